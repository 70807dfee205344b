/* blocking.c — Consul's index-based blocking queries: a waiting request is suspended (no
 * thread of its own) and answered by the thread whose change moves its index, or by the
 * timer thread when its wait ends. The timer thread also drives TTL expiry. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"

#define DEFAULT_WAIT (300 * WARD_NS_PER_S)
#define MAX_WAIT (600 * WARD_NS_PER_S)
/* answer this long before the server's own deadline would answer 504 */
#define DEADLINE_MARGIN (50 * WARD_NS_PER_MS)

struct reg_watch {
    struct ward_req *req;
    reg_query_fn fn;
    uint64_t index;   /* the index the client has seen */
    int64_t deadline; /* monotonic ns */
    struct reg_watch *prev, *next;
    _Alignas(max_align_t) unsigned char params[];
};

/* Everything here is guarded by the state's lock. */
struct reg_watchers {
    struct reg_ctx *ctx;
    pthread_t thread;
    pthread_cond_t cond;
    bool running, stop, draining;
    struct reg_watch *head;
    size_t count;
    uint64_t rng; /* xorshift state for the wait jitter */
    struct ward_metric *gauge;
};

static uint64_t next_random(struct reg_watchers *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x;
}

static void unlink_watch(struct reg_watchers *w, struct reg_watch *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        w->head = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    w->count--;
    ward_gauge_set(w->gauge, (double)w->count);
}

/* Answers a watcher with the current state and forgets it. Lock held. */
static void finish(struct reg_watchers *w, struct reg_watch *x, json_t *body, uint64_t index)
{
    unlink_watch(w, x);
    reg_respond_json(x->req, body, index);
    free(x);
}

/* The state changed: answer every watcher whose query's index moved past its own. */
static void on_change(void *arg)
{
    struct reg_watchers *w = arg;
    struct reg_watch *x = w->head;
    while (x != NULL) {
        struct reg_watch *next = x->next;
        uint64_t index = 0;
        x->fn(w->ctx->st, x->params, &index, false);
        if (index > x->index)
            finish(w, x, x->fn(w->ctx->st, x->params, &index, true), index);
        x = next;
    }
    pthread_cond_signal(&w->cond); /* TTL deadlines may have moved */
}

static void *timer_main(void *arg)
{
    struct reg_watchers *w = arg;
    struct reg_state *st = w->ctx->st;
    reg_state_lock(st);
    while (!w->stop) {
        int64_t next = reg_state_tick(st);
        int64_t now = ward_clock_now(NULL);
        struct reg_watch *x = w->head;
        while (x != NULL) {
            struct reg_watch *after = x->next;
            if (x->deadline <= now) {
                uint64_t index = 0;
                json_t *body = x->fn(st, x->params, &index, true);
                finish(w, x, body, index);
            } else if (x->deadline < next) {
                next = x->deadline;
            }
            x = after;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&w->cond, &st->lock);
        } else {
            struct timespec ts = {.tv_sec = next / WARD_NS_PER_S, .tv_nsec = next % WARD_NS_PER_S};
            int rc = pthread_cond_timedwait(&w->cond, &st->lock, &ts);
            (void)rc; /* timeout or wake-up: look again either way */
        }
    }
    reg_state_unlock(st);
    return NULL;
}

enum ward_err reg_watchers_new(struct reg_ctx *ctx, struct reg_watchers **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    pthread_condattr_t attr;
    bool attr_ok = false, cond_ok = false;
    struct reg_watchers *w = calloc(1, sizeof *w);
    if (w == NULL)
        goto fail;
    w->ctx = ctx;
    w->rng = (uint64_t)ward_clock_wall() | 1;
    if (ctx->metrics != NULL) {
        struct ward_metric_family *f = ward_metrics_gauge(
            ctx->metrics, "registry_watchers", "Blocking queries waiting for a change.", 0, NULL);
        w->gauge = f != NULL ? ward_metric_get(f, NULL) : NULL;
        if (w->gauge == NULL)
            goto fail;
    }
    err = WARD_ERR_SYSTEM;
    attr_ok = pthread_condattr_init(&attr) == 0;
    if (!attr_ok || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0)
        goto fail;
    cond_ok = pthread_cond_init(&w->cond, &attr) == 0;
    if (!cond_ok)
        goto fail;
    /* the thread must not take the signals meant for the server */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, timer_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        goto fail;
    w->running = true;
    reg_state_lock(ctx->st);
    ctx->st->on_change = on_change;
    ctx->st->on_change_arg = w;
    reg_state_unlock(ctx->st);
    pthread_condattr_destroy(&attr);
    *out = w;
    return WARD_ERR_OK;
fail:
    if (attr_ok)
        pthread_condattr_destroy(&attr);
    if (cond_ok)
        pthread_cond_destroy(&w->cond);
    free(w);
    return err;
}

void reg_watchers_drain(struct reg_watchers *w)
{
    struct reg_state *st = w->ctx->st;
    reg_state_lock(st);
    w->draining = true;
    while (w->head != NULL) {
        uint64_t index = 0;
        json_t *body = w->head->fn(st, w->head->params, &index, true);
        finish(w, w->head, body, index);
    }
    reg_state_unlock(st);
}

void reg_watchers_free(struct reg_watchers *w)
{
    if (w == NULL)
        return;
    struct reg_state *st = w->ctx->st;
    reg_state_lock(st);
    w->stop = true;
    st->on_change = NULL;
    pthread_cond_signal(&w->cond);
    reg_state_unlock(st);
    if (w->running)
        pthread_join(w->thread, NULL);
    while (w->head != NULL) { /* none after a drain; freed without an answer otherwise */
        struct reg_watch *x = w->head;
        w->head = x->next;
        free(x);
    }
    pthread_cond_destroy(&w->cond);
    free(w);
}

/* ?index: absent or empty is 0; otherwise a uint64. */
static bool parse_index(const struct ward_req *req, uint64_t *out)
{
    const char *v = NULL;
    *out = 0;
    if (!ward_req_query_nth(req, "index", 0, &v) || v == NULL || v[0] == '\0')
        return true;
    if (v[0] < '0' || v[0] > '9')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || errno != 0)
        return false;
    *out = n;
    return true;
}

static bool parse_wait(const struct ward_req *req, int64_t *out)
{
    const char *v = NULL;
    *out = 0;
    if (!ward_req_query_nth(req, "wait", 0, &v) || v == NULL || v[0] == '\0')
        return true;
    return reg_duration_parse(v, out);
}

void reg_block(struct reg_ctx *ctx, struct ward_req *req, reg_query_fn fn, const void *params,
               size_t size)
{
    struct reg_watchers *w = ctx->watchers;
    struct reg_state *st = ctx->st;
    uint64_t want = 0;
    int64_t wait = 0;
    if (!parse_wait(req, &wait)) {
        reg_respond_error(req, 400, "Invalid wait time");
        return;
    }
    if (!parse_index(req, &want)) {
        reg_respond_error(req, 400, "Invalid index");
        return;
    }
    reg_state_lock(st);
    reg_state_tick(st);
    uint64_t index = 0;
    json_t *body = NULL;
    fn(st, params, &index, false);
    struct reg_watch *x = NULL;
    if (want == 0 || index > want || w->draining || w->stop)
        goto now;
    x = malloc(sizeof *x + size);
    if (x == NULL)
        goto now;
    if (wait <= 0)
        wait = DEFAULT_WAIT;
    if (wait > MAX_WAIT)
        wait = MAX_WAIT;
    wait += (int64_t)(next_random(w) % (uint64_t)(wait / 16 + 1));
    int64_t now = ward_clock_now(NULL);
    *x = (struct reg_watch){.req = req, .fn = fn, .index = want, .deadline = now + wait};
    int64_t limit = ward_req_deadline(req) - DEADLINE_MARGIN;
    if (limit < x->deadline)
        x->deadline = limit;
    memcpy(x->params, params, size);
    ward_req_suspend(req);
    x->next = w->head;
    if (w->head != NULL)
        w->head->prev = x;
    w->head = x;
    w->count++;
    ward_gauge_set(w->gauge, (double)w->count);
    pthread_cond_signal(&w->cond);
    reg_state_unlock(st);
    return;
now:
    body = fn(st, params, &index, true);
    reg_respond_json(req, body, index);
    reg_state_unlock(st);
}
