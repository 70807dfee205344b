/* rclient_discovery.c — the resilient client calling a service by name: it follows the
 * service's watch in the registry and keeps a balancer in step with it, so that an attempt
 * picks an instance from memory; the watch's thread never touches the balancer, the first
 * call after a change does (one atomic load per call when nothing changed). */
#include "rclient_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_follow.h"

/* "host:port", or "[v6]:port" when the host is an IPv6 address; false when it does not fit. */
static bool instance_id(const struct ward_instance *in, char *buf, size_t size)
{
    bool v6 = strchr(in->address, ':') != NULL && in->address[0] != '[';
    int n = snprintf(buf, size, v6 ? "[%s]:%u" : "%s:%u", in->address, (unsigned)in->port);
    return n > 0 && (size_t)n < size;
}

static int by_string(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replaces the balancer's set with the endpoints of list: one per host:port, however many
 * registrations name it (two ids for one endpoint are one place to send to). */
static enum ward_err apply(struct ward__rdisc *d, const struct ward_instances *list)
{
    enum ward_err err = WARD_ERR_NOMEM;
    char *ids = malloc(list->len * WARD_BALANCER_ID_MAX + 1);
    char **sorted = calloc(list->len + 1, sizeof *sorted);
    struct ward_balancer_instance *v = calloc(list->len + 1, sizeof *v);
    size_t n = 0, kept = 0;

    if (ids == NULL || sorted == NULL || v == NULL)
        goto done;
    for (size_t i = 0; i < list->len; i++) {
        char *id = ids + n * WARD_BALANCER_ID_MAX;
        if (instance_id(&list->items[i], id, WARD_BALANCER_ID_MAX))
            sorted[n++] = id; /* an address too long to be an id cannot be called */
    }
    qsort(sorted, n, sizeof *sorted, by_string);
    for (size_t i = 0; i < n; i++)
        if (kept == 0 || strcmp(sorted[i], v[kept - 1].id) != 0)
            v[kept++] = (struct ward_balancer_instance){.id = sorted[i]};
    err = ward_balancer_update(d->balancer, v, kept);
done:
    free(v);
    free(sorted);
    free(ids);
    return err;
}

/* Brings the balancer up to the watch's generation (when it is behind). A failed update
 * leaves it behind, so that the next call tries again. */
static void sync_balancer(struct ward__rdisc *d)
{
    uint64_t gen = ward__registry_generation(d->watch);
    struct ward_instances list;

    if (gen == atomic_load_explicit(&d->synced, memory_order_acquire))
        return;
    pthread_mutex_lock(&d->sync_lock);
    if (ward__registry_snapshot(d->watch, &list, &gen) == WARD_ERR_OK &&
        gen != atomic_load_explicit(&d->synced, memory_order_relaxed) &&
        apply(d, &list) == WARD_ERR_OK)
        atomic_store_explicit(&d->synced, gen, memory_order_release);
    ward_instances_fini(&list);
    pthread_mutex_unlock(&d->sync_lock);
}

enum ward_err ward__rdisc_pick(struct ward__rdisc *d, const char *avoid, const char *path,
                               struct ward_balancer_pick *pick, char **url)
{
    struct ward_balancer_pick other;
    size_t slen = strlen(d->scheme), ilen, plen = strlen(path);

    sync_balancer(d);
    if (ward_balancer_pick(d->balancer, pick) != WARD_ERR_OK)
        return WARD_ERR_UNAVAILABLE;
    /* a retry goes elsewhere when it can (Envoy's previous_hosts predicate) */
    if (avoid[0] != '\0' && strcmp(pick->id, avoid) == 0 &&
        ward_balancer_pick(d->balancer, &other) == WARD_ERR_OK) {
        bool better = strcmp(other.id, avoid) != 0;
        ward_balancer_done(d->balancer, better ? pick : &other, WARD_BALANCER_EXCLUDED);
        if (better)
            *pick = other;
    }
    ilen = strlen(pick->id);
    *url = malloc(slen + ilen + plen + 1);
    if (*url == NULL) {
        ward_balancer_done(d->balancer, pick, WARD_BALANCER_EXCLUDED);
        return WARD_ERR_NOMEM;
    }
    memcpy(*url, d->scheme, slen);
    memcpy(*url + slen, pick->id, ilen);
    memcpy(*url + slen + ilen, path, plen + 1);
    return WARD_ERR_OK;
}

enum ward_err ward__rdisc_new(struct ward_rclient *rc, const struct ward_rclient_settings *s)
{
    const char *service = s->discovery.service != NULL ? s->discovery.service : rc->name;
    struct ward_balancer_settings bs = s->discovery.balancer;
    struct ward__rdisc *d;
    enum ward_err err;

    if (service[0] == '\0')
        return WARD_ERR_INVAL;
    d = calloc(1, sizeof *d);
    if (d == NULL)
        return WARD_ERR_NOMEM;
    rc->disc = d;
    d->scheme = s->discovery.https ? "https://" : "http://";
    if (pthread_mutex_init(&d->sync_lock, NULL) != 0) {
        free(d);
        rc->disc = NULL;
        return WARD_ERR_SYSTEM;
    }
    bs.name = bs.name != NULL ? bs.name : rc->name;
    bs.clock = rc->clock;
    d->owns_balancer = s->discovery.shared_balancer == NULL;
    d->balancer = s->discovery.shared_balancer;
    err = d->owns_balancer ? ward_balancer_new(&bs, &d->balancer) : WARD_ERR_OK;
    if (err == WARD_ERR_OK)
        err = ward__registry_follow(s->discovery.registry, service, &d->watch);
    if (err != WARD_ERR_OK)
        return err; /* ward_rclient_free frees d */
    /* Before the watch's first answer, one discovery seeds the balancer so that the first
     * calls need not fail; the registry being down is no reason to refuse the client. */
    if (ward__registry_generation(d->watch) == 0) {
        struct ward_instances first = {0};
        if (ward_registry_discover(s->discovery.registry, service, &first) == WARD_ERR_OK)
            (void)apply(d, &first);
        ward_instances_fini(&first);
    }
    return WARD_ERR_OK;
}

void ward__rdisc_free(struct ward__rdisc *d)
{
    if (d == NULL)
        return;
    if (d->owns_balancer)
        ward_balancer_free(d->balancer);
    pthread_mutex_destroy(&d->sync_lock);
    free(d);
}
