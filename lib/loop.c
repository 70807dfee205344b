/* loop.c — the event loop: one thread running a libcurl multi handle, a sorted list of
 * timers on the loop's clock, and a queue of tasks posted from any thread (woken with
 * curl_multi_wakeup); ward_httpc_send runs the two halves of httpc_int.h around it. */
#include <ward/loop.h>
#include <ward/thread.h>

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "httpc_int.h"

#define MAX_POLL_MS 1000

/* A posted function or a timer: one node type, so that arming a timer allocates once,
 * in the caller's thread, and the loop thread never fails to file it. */
struct task {
    struct task *next;
    ward_loop_fn *fn;
    void *arg;
    int64_t when; /* timers: due time on the loop's clock */
    bool timer;
};

/* One ward_httpc_send call, from submission to its callback. */
struct xfer {
    struct xfer *prev, *next; /* the loop's transfers in flight */
    struct ward_loop *loop;
    struct ward__call_copy cc;
    struct ward__httpc_xfer x;
    struct ward_http_result res;
    ward_httpc_done_fn *cb;
    void *arg;
};

struct ward_loop {
    const struct ward_clock *clock;
    bool fake; /* timers advance the clock instead of waiting */
    struct ward_httpc *httpc;
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t lock; /* guards head, tail, stopping, self, has_self */
    struct task *head, *tail;
    bool stopping;
    pthread_t self;
    bool has_self;
    /* the loop thread's own */
    struct task *timers; /* sorted by when, then by arming */
    struct xfer *xfers;
    bool draining;
};

void ward_loop_settings_default(struct ward_loop_settings *s)
{
    *s = (struct ward_loop_settings){.clock = NULL, .httpc = NULL};
}

/* Bytes of s with its NUL, or 0 for NULL. */
static size_t str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

/* Copies s (of n bytes with its NUL; NULL when n is 0) to *p and moves *p past it. */
static const char *str_put(char **p, const char *s, size_t n)
{
    char *d = *p;

    if (s == NULL)
        return NULL;
    memcpy(d, s, n);
    *p += n;
    return d;
}

enum ward_err ward__call_copy(struct ward__call_copy *dst, const struct ward_http_call *src)
{
    const char *const *strs[] = {&src->method,      &src->url,        &src->content_type,
                                 &src->request_id,  &src->traceparent, &src->idempotency_key};
    const char **fields[] = {&dst->call.method,      &dst->call.url,
                             &dst->call.content_type, &dst->call.request_id,
                             &dst->call.traceparent,  &dst->call.idempotency_key};
    size_t nh = 0, total, strbytes = 0;
    const char **hs = NULL;
    char *p;

    *dst = (struct ward__call_copy){0};
    if (src->body == NULL && src->body_len > 0)
        return WARD_ERR_INVAL;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        strbytes += str_size(*strs[i]);
    for (const char *const *h = src->headers; h != NULL && *h != NULL; h++, nh++)
        strbytes += str_size(*h);
    total = (src->headers != NULL ? (nh + 1) * sizeof *hs : 0) + strbytes + 1;
    if (__builtin_add_overflow(total, src->body_len, &total))
        return WARD_ERR_NOMEM;
    dst->mem = malloc(total);
    if (dst->mem == NULL)
        return WARD_ERR_NOMEM;
    dst->call = *src;
    p = dst->mem;
    if (src->headers != NULL) {
        hs = (const char **)(void *)p;
        p += (nh + 1) * sizeof *hs;
    }
    if (src->body_len > 0) {
        memcpy(p, src->body, src->body_len);
        dst->call.body = p;
        p += src->body_len;
    } else {
        dst->call.body = NULL;
    }
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        *fields[i] = str_put(&p, *strs[i], str_size(*strs[i]));
    for (size_t i = 0; i < nh; i++)
        hs[i] = str_put(&p, src->headers[i], str_size(src->headers[i]));
    if (hs != NULL)
        hs[nh] = NULL;
    dst->call.headers = hs;
    return WARD_ERR_OK;
}

void ward__call_copy_free(struct ward__call_copy *dst)
{
    free(dst->mem);
    *dst = (struct ward__call_copy){0};
}

/* Files t in the sorted timer list, after every timer due at the same time or earlier. */
static void timer_insert(struct ward_loop *loop, struct task *t)
{
    struct task **at = &loop->timers;

    while (*at != NULL && (*at)->when <= t->when)
        at = &(*at)->next;
    t->next = *at;
    *at = t;
}

/* Queues t for the loop thread; STATE (t not queued) once stopping, unless the caller is
 * the loop thread draining its work. */
static enum ward_err enqueue(struct ward_loop *loop, struct task *t)
{
    enum ward_err rc = WARD_ERR_OK;

    pthread_mutex_lock(&loop->lock);
    if (loop->stopping && !(loop->has_self && pthread_equal(loop->self, pthread_self()))) {
        rc = WARD_ERR_STATE;
    } else {
        t->next = NULL;
        if (loop->tail != NULL)
            loop->tail->next = t;
        else
            loop->head = t;
        loop->tail = t;
    }
    pthread_mutex_unlock(&loop->lock);
    if (rc == WARD_ERR_OK)
        curl_multi_wakeup(loop->multi);
    return rc;
}

static enum ward_err submit(struct ward_loop *loop, bool timer, int64_t delay_ns,
                            ward_loop_fn *fn, void *arg)
{
    struct task *t;
    enum ward_err rc;

    if (loop == NULL || fn == NULL)
        return WARD_ERR_INVAL;
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return WARD_ERR_NOMEM;
    *t = (struct task){.fn = fn, .arg = arg, .timer = timer};
    if (timer && __builtin_add_overflow(ward_clock_now(loop->clock),
                                        delay_ns > 0 ? delay_ns : 0, &t->when))
        t->when = INT64_MAX;
    rc = enqueue(loop, t);
    if (rc != WARD_ERR_OK)
        free(t);
    return rc;
}

enum ward_err ward_loop_post(struct ward_loop *loop, ward_loop_fn *fn, void *arg)
{
    return submit(loop, false, 0, fn, arg);
}

enum ward_err ward_loop_after(struct ward_loop *loop, int64_t delay_ns, ward_loop_fn *fn,
                              void *arg)
{
    return submit(loop, true, delay_ns, fn, arg);
}

/* Runs x's callback and frees x. */
static void xfer_done(struct xfer *x, enum ward_err err)
{
    x->cb(err, &x->res, x->arg);
    ward__call_copy_free(&x->cc);
    free(x);
}

/* Takes a transfer out of the multi handle and the list and finishes it with e; STATE
 * instead of the mapped error when the loop aborted it. */
static void xfer_end(struct xfer *x, CURLcode e, bool aborted)
{
    struct ward_loop *loop = x->loop;
    enum ward_err err;

    curl_multi_remove_handle(loop->multi, x->x.h);
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        loop->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    err = ward__httpc_end(loop->httpc, &x->x, e, &x->res);
    xfer_done(x, aborted ? WARD_ERR_STATE : err);
}

/* The posted first step of ward_httpc_send: prepares the handle and adds it to the multi
 * handle, or ends the call at once. */
static void xfer_start(void *arg)
{
    struct xfer *x = arg;
    struct ward_loop *loop = x->loop;
    enum ward_err err;

    if (loop->draining) {
        xfer_done(x, WARD_ERR_STATE);
        return;
    }
    err = ward__httpc_begin(loop->httpc, &x->cc.call, &x->x, &x->res);
    if (err != WARD_ERR_OK) {
        xfer_done(x, err);
        return;
    }
    x->next = loop->xfers;
    if (loop->xfers != NULL)
        loop->xfers->prev = x;
    loop->xfers = x;
    if (curl_easy_setopt(x->x.h, CURLOPT_PRIVATE, (void *)x) != CURLE_OK ||
        curl_multi_add_handle(loop->multi, x->x.h) != CURLM_OK)
        xfer_end(x, CURLE_OUT_OF_MEMORY, false);
}

enum ward_err ward_httpc_send(struct ward_loop *loop, const struct ward_http_call *call,
                              ward_httpc_done_fn *cb, void *arg)
{
    struct xfer *x = NULL;
    struct task *t = NULL;
    enum ward_err rc = WARD_ERR_INVAL;

    if (loop == NULL || call == NULL || call->url == NULL || cb == NULL)
        goto fail;
    rc = WARD_ERR_NOMEM;
    x = calloc(1, sizeof *x);
    t = calloc(1, sizeof *t);
    if (x == NULL || t == NULL)
        goto fail;
    rc = ward__call_copy(&x->cc, call);
    if (rc != WARD_ERR_OK)
        goto fail;
    x->loop = loop;
    x->cb = cb;
    x->arg = arg;
    *t = (struct task){.fn = xfer_start, .arg = x};
    rc = enqueue(loop, t);
    if (rc != WARD_ERR_OK)
        goto fail;
    return WARD_ERR_OK;
fail:
    if (x != NULL)
        ward__call_copy_free(&x->cc);
    free(x);
    free(t);
    return rc;
}

/* Runs the posted tasks in order and files the timers among them. */
static void run_tasks(struct ward_loop *loop, struct task *t)
{
    struct task *next;

    for (; t != NULL; t = next) {
        next = t->next;
        if (t->timer) {
            timer_insert(loop, t);
        } else {
            t->fn(t->arg);
            free(t);
        }
    }
}

/* Runs the timers due now (on a fake clock: all that are filed, moving the clock to each
 * one's due time first; while draining: all at once). Timers armed by these callbacks
 * are filed on the next pass. */
static void run_timers(struct ward_loop *loop)
{
    struct task *t;
    int64_t now = ward_clock_now(loop->clock);

    while (loop->timers != NULL) {
        t = loop->timers;
        if (t->when > now && !loop->draining) {
            if (!loop->fake)
                break;
            ward_clock_sleep(loop->clock, t->when - now);
            now = ward_clock_now(loop->clock);
        }
        loop->timers = t->next;
        t->fn(t->arg);
        free(t);
    }
}

/* Finishes the transfers libcurl reports done. */
static void reap(struct ward_loop *loop)
{
    CURLMsg *m;
    int left;
    void *priv;

    for (m = curl_multi_info_read(loop->multi, &left); m != NULL;
         m = curl_multi_info_read(loop->multi, &left)) {
        priv = NULL;
        if (m->msg != CURLMSG_DONE ||
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
            priv == NULL)
            continue;
        xfer_end(priv, m->data.result, false);
    }
}

/* How long the poll may wait: until the next real timer, at most MAX_POLL_MS (libcurl
 * shortens it for its own timeouts; curl_multi_wakeup ends it for new tasks). */
static int poll_ms(struct ward_loop *loop)
{
    int64_t left;

    if (loop->timers == NULL)
        return MAX_POLL_MS;
    if (loop->fake)
        return 0;
    left = loop->timers->when - ward_clock_now(loop->clock);
    if (left <= 0)
        return 0;
    if (left >= (int64_t)MAX_POLL_MS * WARD_NS_PER_MS)
        return MAX_POLL_MS;
    return (int)((left + WARD_NS_PER_MS - 1) / WARD_NS_PER_MS);
}

static void *run(void *arg)
{
    struct ward_loop *loop = arg;
    struct task *tasks;
    bool stop, idle;
    int running;

    pthread_mutex_lock(&loop->lock);
    loop->self = pthread_self();
    loop->has_self = true;
    pthread_mutex_unlock(&loop->lock);
    for (;;) {
        pthread_mutex_lock(&loop->lock);
        tasks = loop->head;
        loop->head = loop->tail = NULL;
        stop = loop->stopping;
        pthread_mutex_unlock(&loop->lock);
        if (stop && !loop->draining) {
            loop->draining = true;
            while (loop->xfers != NULL)
                xfer_end(loop->xfers, CURLE_ABORTED_BY_CALLBACK, true);
        }
        idle = tasks == NULL;
        run_tasks(loop, tasks);
        run_timers(loop);
        curl_multi_perform(loop->multi, &running);
        reap(loop);
        if (loop->draining) {
            pthread_mutex_lock(&loop->lock);
            idle = idle && loop->head == NULL;
            pthread_mutex_unlock(&loop->lock);
            if (idle && loop->timers == NULL && loop->xfers == NULL)
                break;
            continue;
        }
        curl_multi_poll(loop->multi, NULL, 0, poll_ms(loop), NULL);
    }
    return NULL;
}

enum ward_err ward_loop_new(const struct ward_loop_settings *s, struct ward_loop **out)
{
    struct ward_httpc_settings hs;
    struct ward_loop *loop = NULL;
    bool locked = false;
    enum ward_err rc = WARD_ERR_INVAL;

    if (out == NULL)
        goto fail;
    rc = WARD_ERR_NOMEM;
    loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        goto fail;
    loop->clock = s != NULL && s->clock != NULL ? s->clock : ward_clock_real();
    loop->fake = loop->clock != ward_clock_real();
    if (s != NULL && s->httpc != NULL)
        hs = *s->httpc;
    else
        ward_httpc_settings_default(&hs);
    hs.clock = loop->clock;
    rc = ward_httpc_new(&hs, &loop->httpc);
    if (rc != WARD_ERR_OK)
        goto fail;
    rc = WARD_ERR_SYSTEM;
    loop->multi = curl_multi_init();
    if (loop->multi == NULL || pthread_mutex_init(&loop->lock, NULL) != 0)
        goto fail;
    locked = true;
    if (ward_thread_start(&loop->thread, run, loop) != WARD_ERR_OK)
        goto fail;
    *out = loop;
    return WARD_ERR_OK;
fail:
    if (loop != NULL) {
        if (locked)
            pthread_mutex_destroy(&loop->lock);
        if (loop->multi != NULL)
            curl_multi_cleanup(loop->multi);
        ward_httpc_free(loop->httpc);
        free(loop);
    }
    return rc;
}

void ward_loop_free(struct ward_loop *loop)
{
    if (loop == NULL)
        return;
    pthread_mutex_lock(&loop->lock);
    loop->stopping = true;
    pthread_mutex_unlock(&loop->lock);
    curl_multi_wakeup(loop->multi);
    pthread_join(loop->thread, NULL);
    curl_multi_cleanup(loop->multi);
    ward_httpc_free(loop->httpc);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

const struct ward_clock *ward_loop_clock(const struct ward_loop *loop)
{
    return loop->clock;
}

struct ward_httpc *ward_loop_httpc(const struct ward_loop *loop)
{
    return loop->httpc;
}
