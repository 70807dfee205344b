/* blocking.c — Consul's blocking queries, index-based and hash-based: a waiting request is
 * suspended (no thread of its own) and answered by the thread whose change moves its index
 * or its content hash, or by the timer thread when its wait ends. The timer thread also
 * drives TTL expiry. */
#include <errno.h>
#include <ward/thread.h>
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
    reg_query_fn fn;     /* index-based, or NULL */
    reg_hash_fn hash_fn; /* hash-based, or NULL */
    uint64_t seen;       /* the index or the content hash the client has seen */
    int64_t deadline;    /* monotonic ns */
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

/* Whether the query of x (over params) no longer matches what its client has seen: the
 * index moved past it, or the content hash differs (or the object is gone). Lock held. */
static bool moved(const struct reg_state *st, const struct reg_watch *x, const void *params)
{
    uint64_t now = 0;
    if (x->hash_fn != NULL)
        return !x->hash_fn(st, params, &now, NULL) || now != x->seen;
    x->fn(st, params, &now, false);
    return now > x->seen;
}

/* Answers x->req with the current state of its query. Lock held. */
static void answer(const struct reg_state *st, const struct reg_watch *x, const void *params)
{
    uint64_t now = 0;
    if (x->hash_fn != NULL) {
        x->hash_fn(st, params, &now, x->req);
        return;
    }
    json_t *body = x->fn(st, params, &now, true);
    reg_respond_json(x->req, body, now);
}

/* Answers a watcher with the current state and forgets it. Lock held. */
static void finish(struct reg_watchers *w, struct reg_watch *x)
{
    unlink_watch(w, x);
    answer(w->ctx->st, x, x->params);
    free(x);
}

/* The state changed: answer every watcher whose query moved away from what it has seen. */
static void on_change(void *arg)
{
    struct reg_watchers *w = arg;
    struct reg_watch *x = w->head;
    while (x != NULL) {
        struct reg_watch *next = x->next;
        if (moved(w->ctx->st, x, x->params))
            finish(w, x);
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
            if (x->deadline <= now)
                finish(w, x);
            else if (x->deadline < next) {
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
    bool cond_ok = false;
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
    cond_ok = ward_cond_init_monotonic(&w->cond) == WARD_ERR_OK;
    if (!cond_ok)
        goto fail;
    /* the thread must not take the signals meant for the server */
    if (ward_thread_start(&w->thread, timer_main, w) != WARD_ERR_OK)
        goto fail;
    w->running = true;
    reg_state_lock(ctx->st);
    ctx->st->on_change = on_change;
    ctx->st->on_change_arg = w;
    reg_state_unlock(ctx->st);
    *out = w;
    return WARD_ERR_OK;
fail:
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
    while (w->head != NULL)
        finish(w, w->head);
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

/* The common part of both kinds of blocking: answers at once when the client asked not to
 * block, the query already moved or the server drains; otherwise holds req as a watcher
 * like proto (req, fn or hash_fn, seen) with params copied, for wait capped and jittered. */
static void hold(struct reg_ctx *ctx, const struct reg_watch *proto, bool block, int64_t wait,
                 const void *params, size_t size)
{
    struct reg_watchers *w = ctx->watchers;
    struct reg_state *st = ctx->st;
    reg_state_lock(st);
    reg_state_tick(st);
    struct reg_watch *x = NULL;
    if (!block || w->draining || w->stop || moved(st, proto, params))
        goto now;
    x = malloc(sizeof *x + size);
    if (x == NULL)
        goto now;
    if (wait <= 0)
        wait = DEFAULT_WAIT;
    if (wait > MAX_WAIT)
        wait = MAX_WAIT;
    wait += (int64_t)(next_random(w) % (uint64_t)(wait / 16 + 1));
    *x = *proto;
    x->prev = NULL;
    x->deadline = ward_clock_now(NULL) + wait;
    int64_t limit = ward_req_deadline(proto->req) - DEADLINE_MARGIN;
    if (limit < x->deadline)
        x->deadline = limit;
    memcpy(x->params, params, size);
    ward_req_suspend(proto->req);
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
    answer(st, proto, params);
    reg_state_unlock(st);
}

void reg_block(struct reg_ctx *ctx, struct ward_req *req, reg_query_fn fn, const void *params,
               size_t size)
{
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
    struct reg_watch proto = {.req = req, .fn = fn, .seen = want};
    hold(ctx, &proto, want != 0, wait, params, size);
}

/* ?hash as this registry writes it: exactly 16 lowercase hex digits. Anything else is a
 * hash that cannot match (false): the query answers at once. */
static bool parse_hash(const char *v, uint64_t *out)
{
    uint64_t h = 0;
    size_t i = 0;
    for (; v[i] != '\0' && i < 16; i++) {
        unsigned d = 0;
        if (v[i] >= '0' && v[i] <= '9')
            d = (unsigned)(v[i] - '0');
        else if (v[i] >= 'a' && v[i] <= 'f')
            d = (unsigned)(v[i] - 'a' + 10);
        else
            return false;
        h = h << 4 | d;
    }
    *out = h;
    return i == 16 && v[i] == '\0';
}

void reg_block_hash(struct reg_ctx *ctx, struct ward_req *req, reg_hash_fn fn, const void *params,
                    size_t size)
{
    const char *v = NULL;
    int64_t wait = 0;
    uint64_t seen = 0;
    if (!parse_wait(req, &wait)) {
        reg_respond_error(req, 400, "Invalid wait time");
        return;
    }
    bool block = ward_req_query_nth(req, "hash", 0, &v) && v != NULL && parse_hash(v, &seen);
    struct reg_watch proto = {.req = req, .hash_fn = fn, .seen = seen};
    hold(ctx, &proto, block, wait, params, size);
}
