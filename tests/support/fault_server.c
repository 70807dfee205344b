/* fault_server.c — libmicrohttpd server for tests that answers faults on command. */
#include "fault_server.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <jansson.h>
#include <microhttpd.h>

/* A mode with its strings owned. */
struct mode {
    enum fault_kind kind;
    unsigned status;
    char *body;
    char *content_type;
    long retry_after_s;
    char *retry_after_date;
    unsigned delay_ms;
    size_t big_bytes;
    char *hname[FAULT_MAX_HEADERS];
    char *hvalue[FAULT_MAX_HEADERS];
};

struct queued {
    struct mode mode;
    int left;
    struct queued *next;
};

struct fault_server {
    struct MHD_Daemon *daemon;
    uint16_t port;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on a new record, a release and the stop */
    /* under mu: */
    struct mode mode;
    struct queued *head, *tail;
    struct fault_request **recs;
    size_t nrecs, caprecs;
    uint64_t release_gen;
    bool stopping;
};

/* One request in progress, MHD's per-request context. */
struct req {
    struct fault_request rec;
    struct mode mode;
};

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Copies src into dst[cap], truncating; NULL copies as "". */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n >= cap)
        n = cap - 1;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* strdup that keeps NULL as NULL; false only when memory runs out. */
static bool dup_opt(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return true;
    *out = strdup(s);
    return *out != NULL;
}

static void mode_fini(struct mode *m)
{
    free(m->body);
    free(m->content_type);
    free(m->retry_after_date);
    for (size_t i = 0; i < FAULT_MAX_HEADERS; i++) {
        free(m->hname[i]);
        free(m->hvalue[i]);
    }
    memset(m, 0, sizeof(*m));
}

/* Deep-copies *src (NULL: FAULT_OK) into *dst. On failure *dst is left empty. */
static bool mode_from(struct mode *dst, const struct fault_mode *src)
{
    static const struct fault_mode ok = {.kind = FAULT_OK};
    bool good = true;

    if (src == NULL)
        src = &ok;
    memset(dst, 0, sizeof(*dst));
    dst->kind = src->kind;
    dst->status = src->status;
    dst->retry_after_s = src->retry_after_s;
    dst->delay_ms = src->delay_ms;
    dst->big_bytes = src->big_bytes;
    good = good && dup_opt(src->body, &dst->body);
    good = good && dup_opt(src->content_type, &dst->content_type);
    good = good && dup_opt(src->retry_after_date, &dst->retry_after_date);
    for (size_t i = 0; good && i < FAULT_MAX_HEADERS && src->headers[i].name != NULL; i++) {
        good = dup_opt(src->headers[i].name, &dst->hname[i]) &&
               dup_opt(src->headers[i].value != NULL ? src->headers[i].value : "",
                       &dst->hvalue[i]);
    }
    if (!good)
        mode_fini(dst);
    return good;
}

/* The public view of an owned mode, to copy it again with mode_from(). */
static struct fault_mode mode_view(const struct mode *m)
{
    struct fault_mode v = {.kind = m->kind,
                           .status = m->status,
                           .body = m->body,
                           .content_type = m->content_type,
                           .retry_after_s = m->retry_after_s,
                           .retry_after_date = m->retry_after_date,
                           .delay_ms = m->delay_ms,
                           .big_bytes = m->big_bytes};

    for (size_t i = 0; i < FAULT_MAX_HEADERS; i++)
        v.headers[i] = (struct fault_header){m->hname[i], m->hvalue[i]};
    return v;
}

static void queue_clear(struct fault_server *fs)
{
    while (fs->head != NULL) {
        struct queued *q = fs->head;

        fs->head = q->next;
        mode_fini(&q->mode);
        free(q);
    }
    fs->tail = NULL;
}

/* Picks the mode of the next request and records it; caller holds mu. Why one step: a test
 * that sees the record may release at once, so the request's release generation must be
 * taken under the same lock. */
static bool take_locked(struct fault_server *fs, struct req *r, uint64_t *gen)
{
    struct fault_request *copy = NULL;
    bool ok = false;
    struct fault_mode view;

    if (fs->nrecs == fs->caprecs) {
        size_t cap = fs->caprecs != 0 ? 2 * fs->caprecs : 16;
        struct fault_request **grown = realloc(fs->recs, cap * sizeof(*grown));

        if (grown == NULL)
            goto fail;
        fs->recs = grown;
        fs->caprecs = cap;
    }
    view = mode_view(fs->head != NULL ? &fs->head->mode : &fs->mode);
    if (!mode_from(&r->mode, &view))
        goto fail;
    r->rec.kind = r->mode.kind;
    copy = malloc(sizeof(*copy));
    if (copy == NULL)
        goto fail;
    *copy = r->rec;
    fs->recs[fs->nrecs++] = copy;
    copy = NULL;
    if (fs->head != NULL && --fs->head->left == 0) {
        struct queued *q = fs->head;

        fs->head = q->next;
        if (fs->head == NULL)
            fs->tail = NULL;
        mode_fini(&q->mode);
        free(q);
    }
    *gen = fs->release_gen;
    pthread_cond_broadcast(&fs->cv);
    ok = true;
fail:
    free(copy);
    return ok;
}

/* Waits on cv until the deadline (CLOCK_MONOTONIC ns), a release after `gen` when
 * hang is set, or the stop; caller holds mu. Returns false if the server is stopping. */
static bool wait_locked(struct fault_server *fs, uint64_t deadline_ns, bool hang, uint64_t gen)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / UINT64_C(1000000000)),
                          .tv_nsec = (long)(deadline_ns % UINT64_C(1000000000))};

    while (!fs->stopping) {
        if (hang ? fs->release_gen != gen : now_ns() >= deadline_ns)
            break;
        if (hang)
            pthread_cond_wait(&fs->cv, &fs->mu);
        else
            pthread_cond_timedwait(&fs->cv, &fs->mu, &ts);
    }
    return !fs->stopping;
}

static ssize_t big_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    uint64_t total = *(const uint64_t *)cls;
    uint64_t left = pos < total ? total - pos : 0;
    size_t n = left < max ? (size_t)left : max;

    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    memset(buf, 'x', n);
    return (ssize_t)n;
}

/* Builds the answer of mode m (the kinds that answer at all). NULL when memory runs out. */
static struct MHD_Response *build(const struct mode *m, const struct fault_request *rec,
                                  size_t seq, unsigned *status)
{
    struct MHD_Response *resp = NULL;
    char *text = NULL;
    uint64_t *total = NULL;
    const char *body = m->body;
    char num[32];

    *status = m->status;
    if (m->kind == FAULT_BIG && m->big_bytes > 0) {
        total = malloc(sizeof(*total));
        if (total == NULL)
            goto fail;
        *total = m->big_bytes;
        resp = MHD_create_response_from_callback(*total, 64 * 1024, big_read, total, free);
        if (resp == NULL)
            goto fail;
        total = NULL;
        *status = 200;
    } else {
        if (m->kind == FAULT_BIG) {
            body = "";
            *status = 200;
        } else if (m->kind == FAULT_429) {
            *status = 429;
        } else if (m->kind == FAULT_STATUS && *status == 0) {
            *status = 500;
        } else if (*status == 0) {
            *status = 200;
        }
        if (body == NULL) {
            json_t *o = m->kind == FAULT_STATUS || m->kind == FAULT_429
                            ? json_pack("{s:s, s:I}", "title", "fault", "status",
                                        (json_int_t)*status)
                            : json_pack("{s:s, s:s, s:I}", "method", rec->method, "path",
                                        rec->path, "seq", (json_int_t)seq);

            text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
        }
        if (body == NULL && text == NULL)
            goto fail;
        if (body == NULL)
            body = text;
        resp = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                               MHD_RESPMEM_MUST_COPY);
        if (resp == NULL)
            goto fail;
        if (m->kind != FAULT_BIG &&
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    m->content_type != NULL ? m->content_type
                                                            : "application/json") != MHD_YES)
            goto fail;
    }
    if (m->kind == FAULT_429 && m->retry_after_date != NULL) {
        if (MHD_add_response_header(resp, "Retry-After", m->retry_after_date) != MHD_YES)
            goto fail;
    } else if (m->kind == FAULT_429 && m->retry_after_s >= 0) {
        snprintf(num, sizeof(num), "%ld", m->retry_after_s);
        if (MHD_add_response_header(resp, "Retry-After", num) != MHD_YES)
            goto fail;
    }
    for (size_t i = 0; i < FAULT_MAX_HEADERS && m->hname[i] != NULL; i++) {
        if (MHD_add_response_header(resp, m->hname[i], m->hvalue[i]) != MHD_YES)
            goto fail;
    }
    free(text);
    return resp;
fail:
    free(total);
    free(text);
    if (resp != NULL)
        MHD_destroy_response(resp);
    return NULL;
}

/* MHD's access handler: the first call records the headers, the next ones collect the body,
 * the last one (no more upload data) picks the mode and answers. Slow and hanging answers
 * block this connection's own thread. Returning MHD_NO closes the connection unanswered. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    static const struct mode too_big = {.kind = FAULT_STATUS, .status = 413};
    static const struct {
        const char *name;
        size_t off;
    } recorded[] = {{"X-Request-Timeout-Ms", offsetof(struct fault_request, timeout_ms)},
                    {"X-Request-Id", offsetof(struct fault_request, request_id)},
                    {"traceparent", offsetof(struct fault_request, traceparent)},
                    {"Idempotency-Key", offsetof(struct fault_request, idempotency_key)},
                    {"Content-Type", offsetof(struct fault_request, content_type)}};
    struct fault_server *fs = cls;
    struct req *r = *con_cls;
    struct MHD_Response *resp = NULL;
    enum MHD_Result ret = MHD_NO;
    const struct mode *m;
    uint64_t gen = 0;
    size_t seq = 0;
    unsigned status;
    bool live;

    (void)version;
    if (r == NULL) {
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            goto out;
        r->rec.arrived_ns = now_ns();
        copy_str(r->rec.method, sizeof(r->rec.method), method);
        copy_str(r->rec.path, sizeof(r->rec.path), url);
        for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++)
            copy_str((char *)&r->rec + recorded[i].off, FAULT_RECORD_VALUE,
                     MHD_lookup_connection_value(conn, MHD_HEADER_KIND, recorded[i].name));
        *con_cls = r;
        ret = MHD_YES;
        goto out;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        size_t kept = r->rec.body_len < FAULT_RECORD_BODY ? r->rec.body_len : FAULT_RECORD_BODY;
        size_t room = FAULT_RECORD_BODY - kept;

        memcpy(r->rec.body + kept, upload_data, n < room ? n : room);
        r->rec.body[kept + (n < room ? n : room)] = '\0';
        r->rec.body_len = SIZE_MAX - r->rec.body_len < n ? SIZE_MAX : r->rec.body_len + n;
        *upload_data_size = 0;
        ret = MHD_YES;
        goto out;
    }
    pthread_mutex_lock(&fs->mu);
    live = !fs->stopping && take_locked(fs, r, &gen);
    if (live)
        seq = fs->nrecs - 1;
    m = r->rec.body_len > FAULT_BODY_LIMIT ? &too_big : &r->mode;
    if (live && m->kind == FAULT_SLOW)
        live = wait_locked(fs, now_ns() + (uint64_t)m->delay_ms * UINT64_C(1000000), false, 0);
    else if (live && m->kind == FAULT_HANG)
        live = wait_locked(fs, 0, true, gen);
    pthread_mutex_unlock(&fs->mu);
    if (!live || m->kind == FAULT_CLOSE)
        goto out;
    resp = build(m, &r->rec, seq, &status);
    if (resp == NULL)
        goto out;
    ret = MHD_queue_response(conn, status, resp);
out:
    if (resp != NULL)
        MHD_destroy_response(resp);
    return ret;
}

/* Frees the per-request context however the request ended. */
static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct req *r = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (r != NULL) {
        mode_fini(&r->mode);
        free(r);
        *con_cls = NULL;
    }
}

struct fault_server *fault_server_start(void)
{
    struct fault_server *fs = calloc(1, sizeof(*fs));
    struct sockaddr_in sa = {.sin_family = AF_INET};
    const union MHD_DaemonInfo *info;
    pthread_condattr_t ca;
    bool mu = false, cv = false, ca_ok = false;

    if (fs == NULL)
        goto fail;
    mu = pthread_mutex_init(&fs->mu, NULL) == 0;
    if (!mu)
        goto fail;
    ca_ok = pthread_condattr_init(&ca) == 0;
    if (!ca_ok || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0)
        goto fail;
    cv = pthread_cond_init(&fs->cv, &ca) == 0;
    if (!cv)
        goto fail;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    /* poll(), not select(): the test process may hold more than FD_SETSIZE fds (a test
     * keeping thousands of client connections open), and select() cannot serve those */
    fs->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD |
                                      MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL,
                                  0, NULL, NULL, handle, fs, MHD_OPTION_SOCK_ADDR, &sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (fs->daemon == NULL)
        goto fail;
    info = MHD_get_daemon_info(fs->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        goto fail;
    fs->port = info->port;
    pthread_condattr_destroy(&ca);
    return fs;
fail:
    if (ca_ok)
        pthread_condattr_destroy(&ca);
    if (fs != NULL && fs->daemon != NULL)
        MHD_stop_daemon(fs->daemon);
    if (cv)
        pthread_cond_destroy(&fs->cv);
    if (mu)
        pthread_mutex_destroy(&fs->mu);
    free(fs);
    return NULL;
}

uint16_t fault_server_port(const struct fault_server *fs)
{
    return fs->port;
}

/* Drops the records; caller holds mu. */
static void records_clear_locked(struct fault_server *fs)
{
    for (size_t i = 0; i < fs->nrecs; i++)
        free(fs->recs[i]);
    free(fs->recs);
    fs->recs = NULL;
    fs->nrecs = 0;
    fs->caprecs = 0;
}

void fault_server_stop(struct fault_server *fs)
{
    if (fs == NULL)
        return;
    pthread_mutex_lock(&fs->mu);
    fs->stopping = true;
    pthread_cond_broadcast(&fs->cv);
    pthread_mutex_unlock(&fs->mu);
    /* every blocked handler now returns MHD_NO, so the connection threads can be joined */
    MHD_stop_daemon(fs->daemon);
    records_clear_locked(fs);
    queue_clear(fs);
    mode_fini(&fs->mode);
    pthread_cond_destroy(&fs->cv);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}

bool fault_server_set(struct fault_server *fs, const struct fault_mode *m)
{
    struct mode fresh, old;

    if (!mode_from(&fresh, m))
        return false;
    pthread_mutex_lock(&fs->mu);
    old = fs->mode;
    fs->mode = fresh;
    pthread_mutex_unlock(&fs->mu);
    mode_fini(&old);
    return true;
}

bool fault_server_push(struct fault_server *fs, const struct fault_mode *m, int times)
{
    struct queued *q = NULL;

    if (times < 1)
        return false;
    q = calloc(1, sizeof(*q));
    if (q == NULL)
        return false;
    if (!mode_from(&q->mode, m)) {
        free(q);
        return false;
    }
    q->left = times;
    pthread_mutex_lock(&fs->mu);
    if (fs->tail != NULL)
        fs->tail->next = q;
    else
        fs->head = q;
    fs->tail = q;
    pthread_mutex_unlock(&fs->mu);
    return true;
}

void fault_server_release(struct fault_server *fs)
{
    pthread_mutex_lock(&fs->mu);
    fs->release_gen++;
    pthread_cond_broadcast(&fs->cv);
    pthread_mutex_unlock(&fs->mu);
}

size_t fault_server_count(struct fault_server *fs)
{
    size_t n;

    pthread_mutex_lock(&fs->mu);
    n = fs->nrecs;
    pthread_mutex_unlock(&fs->mu);
    return n;
}

bool fault_server_request(struct fault_server *fs, size_t i, struct fault_request *out)
{
    bool found;

    pthread_mutex_lock(&fs->mu);
    found = i < fs->nrecs;
    if (found)
        *out = *fs->recs[i];
    pthread_mutex_unlock(&fs->mu);
    return found;
}

void fault_server_reset(struct fault_server *fs)
{
    struct mode old;

    pthread_mutex_lock(&fs->mu);
    records_clear_locked(fs);
    queue_clear(fs);
    old = fs->mode;
    memset(&fs->mode, 0, sizeof(fs->mode));
    pthread_mutex_unlock(&fs->mu);
    mode_fini(&old);
}

bool fault_server_wait_count(struct fault_server *fs, size_t n, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * UINT64_C(1000000);
    struct timespec ts = {.tv_sec = (time_t)(deadline / UINT64_C(1000000000)),
                          .tv_nsec = (long)(deadline % UINT64_C(1000000000))};
    bool reached;

    pthread_mutex_lock(&fs->mu);
    while (fs->nrecs < n && now_ns() < deadline)
        pthread_cond_timedwait(&fs->cv, &fs->mu, &ts);
    reached = fs->nrecs >= n;
    pthread_mutex_unlock(&fs->mu);
    return reached;
}
