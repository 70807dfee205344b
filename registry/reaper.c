/* reaper.c — DeregisterCriticalServiceAfter: a thread that, every reap interval, removes
 * the services with a check critical for longer than that check's limit (Consul's
 * check_reap_interval 30 s and 1 min floor, both flags here). */
#include <signal.h>
#include <ward/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry.h"

struct reg_reaper {
    struct reg_ctx *ctx;
    pthread_t thread;
    pthread_cond_t cond; /* guarded by the state's lock */
    bool stop;
};

/* The service ID of the first check past its limit, or NULL. Lock held. */
static const char *overdue(const struct reg_ctx *ctx, int64_t now)
{
    const struct reg_state *st = ctx->st;
    for (size_t i = 0; i < st->nchecks; i++) {
        const struct reg_check *c = st->checks[i];
        if (c->service_id[0] == '\0' || c->deregister_after <= 0 || c->status != REG_CRITICAL ||
            c->critical_since == 0)
            continue;
        int64_t limit = c->deregister_after < ctx->reap_min ? ctx->reap_min : c->deregister_after;
        if (now - c->critical_since > limit)
            return c->service_id;
    }
    return NULL;
}

size_t reg_reap(struct reg_ctx *ctx)
{
    size_t n = 0;
    int64_t now = ward_clock_now(ctx->st->clock);
    reg_state_tick(ctx->st); /* TTL checks that expired count as critical */
    const char *sid = overdue(ctx, now);
    while (sid != NULL) {
        char *id = strdup(sid); /* sid goes with the service */
        if (id == NULL || !reg_state_deregister(ctx->st, id)) {
            free(id);
            break;
        }
        WARD_INFO(ctx->log, NULL, "service reaped: critical past DeregisterCriticalServiceAfter",
                  WARD_S("service_id", id));
        free(id);
        n++;
        sid = overdue(ctx, now);
    }
    return n;
}

static void *reaper_main(void *arg)
{
    struct reg_reaper *r = arg;
    struct reg_state *st = r->ctx->st;
    reg_state_lock(st);
    int64_t next = ward_clock_now(NULL) + r->ctx->reap_interval;
    while (!r->stop) {
        struct timespec ts = {.tv_sec = next / WARD_NS_PER_S, .tv_nsec = next % WARD_NS_PER_S};
        int rc = pthread_cond_timedwait(&r->cond, &st->lock, &ts);
        (void)rc; /* woken only to stop; otherwise the time is checked below */
        if (r->stop || ward_clock_now(NULL) < next)
            continue;
        reg_reap(r->ctx);
        next = ward_clock_now(NULL) + r->ctx->reap_interval;
    }
    reg_state_unlock(st);
    return NULL;
}

enum ward_err reg_reaper_new(struct reg_ctx *ctx, struct reg_reaper **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    bool cond_ok = false;
    struct reg_reaper *r = calloc(1, sizeof *r);
    if (r == NULL)
        goto fail;
    r->ctx = ctx;
    err = WARD_ERR_SYSTEM;
    cond_ok = ward_cond_init_monotonic(&r->cond) == WARD_ERR_OK;
    if (!cond_ok)
        goto fail;
    /* the thread must not take the signals meant for the server */
    if (ward_thread_start(&r->thread, reaper_main, r) != WARD_ERR_OK)
        goto fail;
    *out = r;
    return WARD_ERR_OK;
fail:
    if (cond_ok)
        pthread_cond_destroy(&r->cond);
    free(r);
    return err;
}

void reg_reaper_free(struct reg_reaper *r)
{
    if (r == NULL)
        return;
    struct reg_state *st = r->ctx->st;
    reg_state_lock(st);
    r->stop = true;
    pthread_cond_signal(&r->cond);
    reg_state_unlock(st);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cond);
    free(r);
}
