/* registry.c — the registry client's interface: URL parsing, dispatch to the backends, and
 * the watch threads with their cache. */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include <ward/limiter.h>
#include <ward/thread.h>

#include "../registry_follow.h"
#include "registry_int.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)


void ward_instances_fini(struct ward_instances *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->len; i++) {
        free(l->items[i].id);
        free(l->items[i].name);
        free(l->items[i].address);
    }
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

enum ward_err ward__instances_push(struct ward_instances *l, const char *id, const char *name,
                                   const char *address, uint16_t port)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward_instance in = {strdup(id), strdup(name), strdup(address), port};
    if (in.id == NULL || in.name == NULL || in.address == NULL)
        goto fail;
    struct ward_instance *items = realloc(l->items, (l->len + 1) * sizeof *items);
    if (items == NULL)
        goto fail;
    l->items = items;
    l->items[l->len++] = in;
    return WARD_ERR_OK;
fail:
    free(in.id);
    free(in.name);
    free(in.address);
    return err;
}

/* qsort order: by id. */
static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct ward_instance *)a)->id, ((const struct ward_instance *)b)->id);
}

void ward__instances_sort(struct ward_instances *l)
{
    if (l->len > 1)
        qsort(l->items, l->len, sizeof *l->items, by_id);
}

enum ward_err ward__instances_copy(const struct ward_instances *from, struct ward_instances *to)
{
    enum ward_err err = WARD_ERR_OK;
    for (size_t i = 0; i < from->len && err == WARD_ERR_OK; i++) {
        const struct ward_instance *in = &from->items[i];
        err = ward__instances_push(to, in->id, in->name, in->address, in->port);
    }
    if (err != WARD_ERR_OK)
        ward_instances_fini(to);
    return err;
}

bool ward__instances_equal(const struct ward_instances *a, const struct ward_instances *b)
{
    if (a->len != b->len)
        return false;
    for (size_t i = 0; i < a->len; i++) {
        const struct ward_instance *x = &a->items[i], *y = &b->items[i];
        if (strcmp(x->id, y->id) != 0 || strcmp(x->name, y->name) != 0 ||
            strcmp(x->address, y->address) != 0 || x->port != y->port)
            return false;
    }
    return true;
}

enum ward_err ward__parse_hostport(const char *s, size_t n, char **host, uint16_t *port)
{
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ':')
            colon = s + i;
    if (colon == NULL || colon == s)
        return WARD_ERR_INVAL;
    size_t hl = (size_t)(colon - s), pl = n - hl - 1;
    if (pl == 0 || pl > 5)
        return WARD_ERR_INVAL;
    unsigned v = 0;
    for (size_t i = 0; i < pl; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9')
            return WARD_ERR_INVAL;
        v = v * 10 + (unsigned)(colon[1 + i] - '0');
    }
    for (size_t i = 0; i < hl; i++)
        if (s[i] == '/' || s[i] == ',' || s[i] == '=' || s[i] == '@' || (unsigned char)s[i] <= ' ')
            return WARD_ERR_INVAL;
    bool bracket = s[0] == '[';
    if (v == 0 || v > 65535 || bracket != (s[hl - 1] == ']') ||
        (!bracket && memchr(s, ':', hl) != NULL))
        return WARD_ERR_INVAL;
    *host = strndup(s, hl);
    if (*host == NULL)
        return WARD_ERR_NOMEM;
    *port = (uint16_t)v;
    return WARD_ERR_OK;
}

void ward_registry_settings_default(struct ward_registry_settings *s)
{
    *s = (struct ward_registry_settings){
        .request_timeout = 2 * NS_PER_S,
        .watch_wait = 2 * NS_PER_S,
        .watch_rate = 5.0,
        .keep_period = 10 * NS_PER_S,
        .lease_ttl = 10 * NS_PER_S,
        .watch_silence = 11 * 60 * NS_PER_S,
    };
    ward_retry_policy_default(&s->backoff);
    s->backoff.max_attempts = UINT32_MAX;
    s->backoff.cap_ns = 5 * NS_PER_S;
}

/* Parses r->s.url into the backend's fields. */
static enum ward_err parse_url(struct ward_registry *r, const char *url)
{
    enum ward_err err = WARD_ERR_OK;
    char *host = NULL;
    if (url == NULL || *url == '\0') {
        r->kind = WARD__REG_NONE;
    } else if (strncmp(url, "static:", 7) == 0) {
        r->kind = WARD__REG_STATIC;
        err = ward__static_parse(r, url + 7);
    } else if (strncmp(url, "etcd://", 7) == 0) {
        r->kind = WARD__REG_ETCD;
        err = ward__etcd_parse(r, url + 7);
    } else if (strncmp(url, "consul://", 9) == 0) {
        r->kind = WARD__REG_CONSUL;
        const char *hp = url + 9;
        size_t n = strlen(hp);
        if (n > 0 && hp[n - 1] == '/')
            n--;
        uint16_t port = 0;
        err = ward__parse_hostport(hp, n, &host, &port);
        if (err != WARD_ERR_OK)
            goto fail;
        size_t len = strlen(host) + 16;
        r->base = malloc(len);
        err = WARD_ERR_NOMEM;
        if (r->base == NULL)
            goto fail;
        snprintf(r->base, len, "http://%s:%u", host, (unsigned)port);
        err = WARD_ERR_OK;
    } else {
        err = WARD_ERR_INVAL;
    }
fail:
    free(host);
    return err;
}

/* Whether s is usable. */
static bool settings_ok(const struct ward_registry_settings *s)
{
    return s->request_timeout >= NS_PER_MS && s->watch_wait >= NS_PER_MS &&
           s->watch_wait <= 600 * NS_PER_S && isfinite(s->watch_rate) && s->watch_rate > 0 &&
           s->keep_period >= NS_PER_MS && s->lease_ttl >= NS_PER_S &&
           s->watch_silence >= NS_PER_MS && ward_retry_policy_check(&s->backoff) == WARD_ERR_OK;
}

enum ward_err ward_registry_new(const struct ward_registry_settings *s, struct ward_registry **out)
{
    enum ward_err err = WARD_ERR_INVAL;
    struct ward_registry *r = NULL;
    if (out == NULL)
        return err;
    *out = NULL;
    if (s == NULL || !settings_ok(s))
        goto fail;
    err = WARD_ERR_NOMEM;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        goto fail;
    r->s = *s;
    r->s.url = NULL;
    r->s.token = NULL;
    err = WARD_ERR_SYSTEM;
    /* a calloc'ed mutex and cond are valid initial values, so free may destroy them */
    if (pthread_mutex_init(&r->lock, NULL) != 0 || ward_cond_init_monotonic(&r->cond) != WARD_ERR_OK)
        goto fail;
    err = parse_url(r, s->url);
    if (err != WARD_ERR_OK || r->kind == WARD__REG_NONE || r->kind == WARD__REG_STATIC)
        goto done;
    const char *token = s->token != NULL ? s->token : getenv("WARD_CONSUL_TOKEN");
    err = WARD_ERR_INVAL;
    if (token != NULL && strpbrk(token, "\r\n") != NULL)
        goto fail;
    if (token != NULL && *token != '\0' && r->kind == WARD__REG_CONSUL) {
        size_t n = strlen(token) + 17;
        r->token_header = malloc(n);
        err = WARD_ERR_NOMEM;
        if (r->token_header == NULL)
            goto fail;
        snprintf(r->token_header, n, "X-Consul-Token: %s", token);
    }
    struct ward_httpc_settings hs;
    ward_httpc_settings_default(&hs);
    hs.connect_timeout = s->request_timeout < NS_PER_S ? s->request_timeout : NS_PER_S;
    hs.total_timeout = s->request_timeout + s->watch_wait + s->watch_wait / 16 + NS_PER_S;
    err = ward_httpc_new(&hs, &r->http);
done:
    if (err != WARD_ERR_OK)
        goto fail;
    *out = r;
    return WARD_ERR_OK;
fail:
    ward_registry_free(r);
    return err;
}

bool ward__reg_pause(struct ward_registry *r, const bool *own, int64_t ns)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int64_t t = until.tv_nsec + (ns > 0 ? ns : 0);
    until.tv_sec += (time_t)(t / NS_PER_S);
    until.tv_nsec = (long)(t % NS_PER_S);
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    while (!r->stopping && (own == NULL || !*own) && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&r->cond, &r->lock, &until);
    bool go = !r->stopping && (own == NULL || !*own);
    pthread_mutex_unlock(&r->lock);
    return go;
}

void ward__watch_publish(struct ward__reg_watch *w, struct ward_instances *got, bool first)
{
    struct ward_registry *r = w->r;
    struct ward_instances snap = {0};
    pthread_mutex_lock(&r->lock);
    bool changed = first || !ward__instances_equal(&w->cache, got);
    if (changed) {
        struct ward_instances old = w->cache;
        w->cache = *got;
        *got = old;
        atomic_fetch_add_explicit(&w->generation, 1, memory_order_release);
        if (w->fn != NULL && ward__instances_copy(&w->cache, &snap) != WARD_ERR_OK)
            changed = false;
    }
    pthread_mutex_unlock(&r->lock);
    if (changed && w->fn != NULL)
        w->fn(&snap, w->arg);
    ward_instances_fini(&snap);
}

/* The consul watch loop (see ward_registry_watch). */
static void *watch_main(void *arg)
{
    struct ward__reg_watch *w = arg;
    struct ward_registry *r = w->r;
    const struct ward_clock *clock = r->s.clock != NULL ? r->s.clock : ward_clock_real();
    struct ward_retry_state st;
    ward_retry_state_init(&st);
    uint64_t index = 0;
    bool first = true;
    for (;;) {
        struct ward_limiter_reservation tok;
        int64_t delay = 0;
        if (ward_limiter_reserve_n(w->bucket, 1, &tok) == WARD_ERR_OK)
            delay = ward_limiter_reservation_delay(&tok, ward_clock_now(clock));
        if (!ward__reg_pause(r, NULL, delay))
            break;
        struct ward_instances got = {0};
        uint64_t idx = 0;
        enum ward_err err = ward__consul_health(r, w->name, index, r->s.watch_wait, &idx, &got);
        if (err != WARD_ERR_OK) {
            /* Down: keep the cache; read afresh when back (it may have restarted). */
            index = 0;
            st.attempts++;
            st.last_delay_ns = ward_retry_next_delay(&r->s.backoff, st.attempts,
                                                     st.last_delay_ns, &st.rng);
            if (!ward__reg_pause(r, NULL, st.last_delay_ns))
                break;
            continue;
        }
        st.attempts = 0;
        st.last_delay_ns = 0;
        index = idx < index ? 0 : idx; /* backwards: reset, one non-blocking read */
        ward__watch_publish(w, &got, first);
        first = false;
        ward_instances_fini(&got);
    }
    return NULL;
}


static void watch_free(struct ward__reg_watch *w)
{
    ward_instances_fini(&w->cache);
    ward_limiter_free(w->bucket);
    free(w->name);
    free(w);
}

void ward_registry_free(struct ward_registry *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_broadcast(&r->cond);
    for (struct ward__reg_watch *w = r->watches; w != NULL; w = w->next)
        if (w->wake != NULL)
            curl_multi_wakeup(w->wake); /* an etcd stream: it ends at once */
    pthread_mutex_unlock(&r->lock);
    while (r->watches != NULL) {
        struct ward__reg_watch *w = r->watches;
        r->watches = w->next;
        if (w->started)
            pthread_join(w->thread, NULL);
        watch_free(w);
    }
    ward__keep_free_all(r);
    ward__etcd_keep_free_all(r);
    ward_httpc_free(r->http);
    for (size_t i = 0; i < r->n_endpoints; i++)
        free(r->endpoints[i]);
    free(r->endpoints);
    ward_instances_fini(&r->statics);
    free(r->base);
    free(r->token_header);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool ward__registration_ok(const struct ward_registration *reg)
{
    return reg != NULL && reg->id != NULL && *reg->id != '\0' && reg->name != NULL &&
           *reg->name != '\0' && reg->address != NULL && *reg->address != '\0' &&
           strcmp(reg->address, "0.0.0.0") != 0 && strcmp(reg->address, "::") != 0 &&
           reg->port > 0 && reg->check_interval >= 0 && reg->check_timeout >= 0 &&
           reg->deregister_after >= 0;
}

enum ward_err ward_registry_register(struct ward_registry *r, const struct ward_registration *reg)
{
    if (r == NULL || !ward__registration_ok(reg))
        return WARD_ERR_INVAL;
    if (r->kind == WARD__REG_ETCD)
        return ward__etcd_register(r, reg, true);
    return r->kind == WARD__REG_CONSUL ? ward__consul_register(r, reg) : WARD_ERR_OK;
}

enum ward_err ward_registry_deregister(struct ward_registry *r, const char *id)
{
    if (r == NULL || id == NULL || *id == '\0')
        return WARD_ERR_INVAL;
    if (r->kind == WARD__REG_ETCD)
        return ward__etcd_deregister(r, id);
    if (r->kind != WARD__REG_CONSUL)
        return WARD_ERR_OK;
    ward__keep_stop(r, id);
    return ward__consul_deregister(r, id);
}

enum ward_err ward_registry_discover(struct ward_registry *r, const char *name,
                                     struct ward_instances *out)
{
    if (r == NULL || name == NULL || *name == '\0' || out == NULL)
        return WARD_ERR_INVAL;
    *out = (struct ward_instances){0};
    uint64_t idx = 0;
    switch (r->kind) {
    case WARD__REG_CONSUL:
        return ward__consul_health(r, name, 0, r->s.watch_wait, &idx, out);
    case WARD__REG_STATIC:
        return ward__static_find(r, name, out);
    case WARD__REG_ETCD:
        return ward__etcd_discover(r, name, out);
    case WARD__REG_NONE:
    default:
        return WARD_ERR_OK;
    }
}

/* The watch of name, or NULL; r->lock held. */
static struct ward__reg_watch *find_watch(struct ward_registry *r, const char *name)
{
    struct ward__reg_watch *w = r->watches;
    while (w != NULL && strcmp(w->name, name) != 0)
        w = w->next;
    return w;
}

enum ward_err ward_registry_watch(struct ward_registry *r, const char *name,
                                  ward_registry_watch_fn fn, void *arg)
{
    enum ward_err err = WARD_ERR_INVAL;
    if (r == NULL || name == NULL || *name == '\0')
        return err;
    err = WARD_ERR_NOMEM;
    struct ward__reg_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return err;
    w->r = r;
    w->fn = fn;
    w->arg = arg;
    w->name = strdup(name);
    if (w->name == NULL)
        goto fail;
    if (r->kind == WARD__REG_STATIC) {
        err = ward__static_find(r, name, &w->cache);
        if (err != WARD_ERR_OK)
            goto fail;
        w->generation = 1; /* answered, once and for all */
    } else if (r->kind == WARD__REG_CONSUL) {
        struct ward_limiter_settings ls;
        ward_limiter_settings_default(&ls);
        ls.name = "registry_watch";
        ls.limit = r->s.watch_rate;
        ls.burst = 2;
        ls.clock = r->s.clock;
        err = ward_limiter_new(&ls, &w->bucket);
        if (err != WARD_ERR_OK)
            goto fail;
    } else if (r->kind == WARD__REG_NONE) {
        w->generation = 1; /* none: nothing, for good */
    }
    pthread_mutex_lock(&r->lock);
    err = find_watch(r, name) != NULL ? WARD_ERR_EXISTS : WARD_ERR_OK;
    if (err == WARD_ERR_OK && (r->kind == WARD__REG_CONSUL || r->kind == WARD__REG_ETCD)) {
        err = ward_thread_start(&w->thread,
                                r->kind == WARD__REG_ETCD ? ward__etcd_watch_main : watch_main, w);
        w->started = err == WARD_ERR_OK;
    }
    if (err == WARD_ERR_OK) {
        w->next = r->watches;
        r->watches = w;
    }
    pthread_mutex_unlock(&r->lock);
    if (err != WARD_ERR_OK)
        goto fail;
    if (!w->started && fn != NULL)
        fn(&w->cache, arg); /* static and none: never changes, so safe unlocked */
    return WARD_ERR_OK;
fail:
    watch_free(w);
    return err;
}

enum ward_err ward_registry_cached(struct ward_registry *r, const char *name,
                                   struct ward_instances *out)
{
    if (r == NULL || name == NULL || out == NULL)
        return WARD_ERR_INVAL;
    *out = (struct ward_instances){0};
    pthread_mutex_lock(&r->lock);
    struct ward__reg_watch *w = find_watch(r, name);
    enum ward_err err = w != NULL ? ward__instances_copy(&w->cache, out) : WARD_ERR_NOT_FOUND;
    pthread_mutex_unlock(&r->lock);
    return err;
}

enum ward_err ward__registry_follow(struct ward_registry *r, const char *name,
                                    struct ward__reg_watch **out)
{
    enum ward_err err = ward_registry_watch(r, name, NULL, NULL);
    if (err != WARD_ERR_OK && err != WARD_ERR_EXISTS)
        return err;
    pthread_mutex_lock(&r->lock);
    *out = find_watch(r, name); /* watches live until r is freed */
    pthread_mutex_unlock(&r->lock);
    return WARD_ERR_OK;
}

uint64_t ward__registry_generation(const struct ward__reg_watch *w)
{
    return atomic_load_explicit(&w->generation, memory_order_acquire);
}

enum ward_err ward__registry_snapshot(struct ward__reg_watch *w, struct ward_instances *out,
                                      uint64_t *generation)
{
    *out = (struct ward_instances){0};
    pthread_mutex_lock(&w->r->lock);
    *generation = atomic_load_explicit(&w->generation, memory_order_relaxed);
    enum ward_err err = ward__instances_copy(&w->cache, out);
    pthread_mutex_unlock(&w->r->lock);
    return err;
}
