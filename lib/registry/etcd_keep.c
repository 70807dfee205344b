/* etcd_keep.c — registration on etcd: the key lives under a lease, and a thread per
 * registration keeps the lease alive (every TTL/3, as etcd's Go client does), grants a new
 * one and puts the key again when etcd says the lease is gone, and plays the health
 * checker that etcd does not have: while the instance's own check fails its key is taken
 * down, and it is put back once the check passes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/log.h>
#include <ward/thread.h>

#include "registry_int.h"

#define NS_PER_S INT64_C(1000000000)

struct ward__etcd_keep {
    struct ward__etcd_keep *next;
    struct ward_registry *r;
    struct ward__reg_copy copy;
    char *key, *value;  /* the endpoints-format entry */
    char *check_url;    /* NULL: no check */
    int64_t lease;      /* 0: none granted (or it is gone) */
    bool up;            /* the key is in etcd */
    bool healthy;       /* the last check passed (true without a check) */
    bool stop;          /* guarded by r->lock */
    pthread_t thread;
    bool started;
};

static int64_t now_ns(void)
{
    return ward_clock_now(ward_clock_real());
}

/* {"Op":0,"Addr":"host:port","Metadata":{...}}: etcd's endpoints.Update, so that
 * etcd's own resolvers read our instances. */
static char *endpoint_value(const struct ward_registration *reg, const char *addr)
{
    json_t *tags = json_array();
    json_t *meta = json_pack("{s:s, s:s}", "id", reg->id, "name", reg->name);
    char *text = NULL;
    if (tags == NULL || meta == NULL)
        goto done;
    for (size_t i = 0; reg->tags != NULL && reg->tags[i] != NULL; i++)
        if (json_array_append_new(tags, json_string(reg->tags[i])) != 0)
            goto done;
    if ((reg->version != NULL && json_object_set_new(meta, "version", json_string(reg->version))) ||
        json_object_set(meta, "tags", tags) != 0)
        goto done;
    json_t *o = json_pack("{s:i, s:s, s:O}", "Op", 0, "Addr", addr, "Metadata", meta);
    if (o != NULL)
        text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
done:
    json_decref(tags);
    json_decref(meta);
    return text;
}

static void keep_free(struct ward__etcd_keep *k)
{
    if (k == NULL)
        return;
    ward__reg_copy_free(&k->copy);
    free(k->key);
    free(k->value);
    free(k->check_url);
    free(k);
}

/* A keeper for reg, its strings made; NULL on NOMEM. */
static struct ward__etcd_keep *keep_new(struct ward_registry *r,
                                        const struct ward_registration *reg)
{
    struct ward__etcd_keep *k = calloc(1, sizeof *k);
    if (k == NULL || ward__reg_copy(&k->copy, reg) != WARD_ERR_OK)
        goto fail;
    k->r = r;
    k->healthy = true; /* a daemon registers once it serves */
    k->key = ward__etcd_key(reg->name, reg->address, reg->port);
    if (k->key == NULL)
        goto fail;
    const char *addr = k->key + strlen("services/") + strlen(reg->name) + 1;
    k->value = endpoint_value(reg, addr);
    const char *path = reg->check_path != NULL ? reg->check_path : "/ready";
    if (k->value == NULL)
        goto fail;
    if (*path != '\0') {
        size_t n = strlen(addr) + strlen(path) + 8;
        k->check_url = malloc(n);
        if (k->check_url == NULL)
            goto fail;
        snprintf(k->check_url, n, "http://%s%s", addr, path);
    }
    return k;
fail:
    keep_free(k);
    return NULL;
}

/* Calls path with body (taken) and drops the answer, or hands it over in *out. */
static enum ward_err etcd_do(struct ward_registry *r, const char *path, json_t *body,
                             json_t **out)
{
    json_t *res = NULL;
    enum ward_err err = body != NULL ? ward__etcd_call(r, path, body, &res) : WARD_ERR_NOMEM;
    json_decref(body);
    if (out != NULL)
        *out = res;
    else
        json_decref(res);
    return err;
}

static json_t *lease_body(int64_t lease)
{
    char id[32];
    snprintf(id, sizeof id, "%" PRId64, lease);
    return json_pack("{s:s}", "ID", id);
}

/* Puts the key under the current lease. */
static enum ward_err put_key(struct ward__etcd_keep *k)
{
    char id[32];
    char *key = ward__b64_encode(k->key, strlen(k->key));
    char *value = ward__b64_encode(k->value, strlen(k->value));
    json_t *body = NULL;
    snprintf(id, sizeof id, "%" PRId64, k->lease);
    if (key != NULL && value != NULL)
        body = json_pack("{s:s, s:s, s:s}", "key", key, "value", value, "lease", id);
    free(key);
    free(value);
    enum ward_err err = etcd_do(k->r, "/v3/kv/put", body, NULL);
    k->up = err == WARD_ERR_OK;
    return err;
}

static enum ward_err delete_key(struct ward__etcd_keep *k)
{
    char *key = ward__b64_encode(k->key, strlen(k->key));
    json_t *body = key != NULL ? json_pack("{s:s}", "key", key) : NULL;
    free(key);
    enum ward_err err = etcd_do(k->r, "/v3/kv/deleterange", body, NULL);
    if (err == WARD_ERR_OK)
        k->up = false;
    return err;
}

/* A new lease, and the key under it when the instance is healthy. */
static enum ward_err grant_and_put(struct ward__etcd_keep *k)
{
    char ttl[32];
    json_t *res = NULL;
    int64_t secs = (k->r->s.lease_ttl + NS_PER_S - 1) / NS_PER_S;
    snprintf(ttl, sizeof ttl, "%" PRId64, secs);
    enum ward_err err = etcd_do(k->r, "/v3/lease/grant", json_pack("{s:s}", "TTL", ttl), &res);
    if (err == WARD_ERR_OK) {
        k->lease = ward__etcd_int(res, "ID");
        err = k->lease != 0 ? WARD_ERR_OK : WARD_ERR_TYPE;
    }
    json_decref(res);
    if (err == WARD_ERR_OK && k->healthy)
        err = put_key(k);
    return err;
}

/* One keep-alive: OK with the lease still there, NOT_FOUND when etcd says it is gone (an
 * answer without a TTL), or the transport's error. */
static enum ward_err keep_alive(struct ward__etcd_keep *k)
{
    json_t *res = NULL;
    enum ward_err err = etcd_do(k->r, "/v3/lease/keepalive", lease_body(k->lease), &res);
    if (err == WARD_ERR_OK && ward__etcd_int(json_object_get(res, "result"), "TTL") <= 0)
        err = WARD_ERR_NOT_FOUND;
    json_decref(res);
    return err;
}

/* The instance's own check, as Consul's agent would run it: a 2xx within the timeout. */
static bool check_passes(struct ward__etcd_keep *k)
{
    const struct ward_registration *reg = &k->copy.reg;
    int64_t timeout = reg->check_timeout > 0 ? reg->check_timeout : NS_PER_S;
    struct ward_http_result res = {0};
    struct ward_http_call c = {.url = k->check_url, .deadline = now_ns() + timeout};
    enum ward_err err = ward_httpc_do(k->r->http, &c, &res);
    bool ok = err == WARD_ERR_OK && res.status >= 200 && res.status < 300;
    ward_http_result_fini(&res);
    return ok;
}

/* Runs the check and takes the key down or puts it back to match. */
static void follow_check(struct ward__etcd_keep *k)
{
    struct ward_log *log = k->r->s.log;
    k->healthy = check_passes(k);
    if (k->lease == 0 || k->healthy == k->up)
        return;
    if (!k->healthy && delete_key(k) == WARD_ERR_OK)
        WARD_WARN(log, NULL, "check failing: key taken down", WARD_S("id", k->copy.reg.id),
                  WARD_S("key", k->key));
    else if (k->healthy && put_key(k) == WARD_ERR_OK)
        WARD_INFO(log, NULL, "check passing: key put back", WARD_S("id", k->copy.reg.id),
                  WARD_S("key", k->key));
}

/* The keeper's loop (see ward_registry_keep_registered). */
static void *keep_main(void *arg)
{
    struct ward__etcd_keep *k = arg;
    struct ward_registry *r = k->r;
    const struct ward_registration *reg = &k->copy.reg;
    int64_t every = r->s.lease_ttl / 3;
    int64_t check_every = reg->check_interval > 0 ? reg->check_interval : 2 * NS_PER_S;
    int64_t now = now_ns();
    int64_t next_keep = k->lease != 0 ? now + every : now;
    int64_t next_check = now + check_every;
    struct ward_retry_state st;
    bool had_lease = k->lease != 0;
    ward_retry_state_init(&st);
    for (;;) {
        int64_t next = next_keep;
        if (k->check_url != NULL && next_check < next)
            next = next_check;
        if (!ward__reg_pause(r, &k->stop, next - now_ns()))
            break;
        now = now_ns();
        if (k->check_url != NULL && now >= next_check) {
            next_check = now + check_every;
            follow_check(k);
        }
        if (now < next_keep)
            continue;
        bool granting = k->lease == 0;
        enum ward_err err = granting ? grant_and_put(k) : keep_alive(k);
        if (err == WARD_ERR_NOT_FOUND && !granting) { /* the lease is gone: grant anew */
            k->lease = 0;
            k->up = false;
            next_keep = now;
            continue;
        }
        if (err == WARD_ERR_OK && k->healthy && !k->up)
            err = put_key(k); /* a put that failed after its grant */
        if (err != WARD_ERR_OK) { /* soon again: while etcd is away the lease may live on */
            st.attempts++;
            st.last_delay_ns = ward_retry_next_delay(&r->s.backoff, st.attempts,
                                                     st.last_delay_ns, &st.rng);
            next_keep = now + (st.last_delay_ns < every ? st.last_delay_ns : every);
            continue;
        }
        if (granting)
            WARD_INFO(r->s.log, NULL, had_lease ? "re-registered" : "registered",
                      WARD_S("id", reg->id), WARD_S("key", k->key));
        had_lease = true;
        st.attempts = 0;
        st.last_delay_ns = 0;
        next_keep = now + every;
    }
    return NULL;
}

/* The keeper of id, unlinked from r's list (NULL: none); r->lock held. */
static struct ward__etcd_keep *unlink_keep(struct ward_registry *r, const char *id)
{
    for (struct ward__etcd_keep **p = &r->etcd_keeps; *p != NULL; p = &(*p)->next) {
        struct ward__etcd_keep *k = *p;
        if (strcmp(k->copy.reg.id, id) == 0) {
            *p = k->next;
            return k;
        }
    }
    return NULL;
}

/* Stops k's thread and waits for it. */
static void stop_keep(struct ward_registry *r, struct ward__etcd_keep *k)
{
    pthread_mutex_lock(&r->lock);
    k->stop = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (k->started)
        pthread_join(k->thread, NULL);
}

/* Revokes k's lease, which deletes its key; a lease already gone is fine. */
static enum ward_err revoke(struct ward__etcd_keep *k)
{
    if (k->lease == 0)
        return WARD_ERR_OK;
    enum ward_err err = etcd_do(k->r, "/v3/lease/revoke", lease_body(k->lease), NULL);
    return err == WARD_ERR_NOT_FOUND ? WARD_ERR_OK : err;
}

enum ward_err ward__etcd_register(struct ward_registry *r, const struct ward_registration *reg,
                                  bool wait_first)
{
    struct ward__etcd_keep *old, *k;
    enum ward_err err = WARD_ERR_OK;

    pthread_mutex_lock(&r->lock);
    for (old = r->etcd_keeps; old != NULL && strcmp(old->copy.reg.id, reg->id) != 0;)
        old = old->next;
    pthread_mutex_unlock(&r->lock);
    if (old != NULL && !wait_first)
        return WARD_ERR_OK; /* register keeps it already */
    k = keep_new(r, reg);
    if (k == NULL)
        return WARD_ERR_NOMEM;
    if (wait_first)
        err = grant_and_put(k);
    if (err != WARD_ERR_OK) {
        (void)revoke(k); /* a grant whose put failed */
        keep_free(k);
        return err;
    }
    /* registered again: the put moved the key to the new lease, so revoking the old one
     * (and stopping its keeper) leaves the new entry in place */
    if (old != NULL)
        (void)ward__etcd_deregister(r, reg->id);
    pthread_mutex_lock(&r->lock);
    err = ward_thread_start(&k->thread, keep_main, k);
    k->started = err == WARD_ERR_OK;
    if (err == WARD_ERR_OK) {
        k->next = r->etcd_keeps;
        r->etcd_keeps = k;
    }
    pthread_mutex_unlock(&r->lock);
    if (err != WARD_ERR_OK) {
        (void)revoke(k);
        keep_free(k);
    }
    return err;
}

enum ward_err ward__etcd_deregister(struct ward_registry *r, const char *id)
{
    pthread_mutex_lock(&r->lock);
    struct ward__etcd_keep *k = unlink_keep(r, id);
    pthread_mutex_unlock(&r->lock);
    if (k == NULL)
        return WARD_ERR_NOT_FOUND;
    stop_keep(r, k);
    enum ward_err err = revoke(k);
    keep_free(k);
    return err;
}

void ward__etcd_keep_free_all(struct ward_registry *r)
{
    while (r->etcd_keeps != NULL) {
        struct ward__etcd_keep *k = r->etcd_keeps;
        r->etcd_keeps = k->next;
        if (k->started)
            pthread_join(k->thread, NULL); /* r->stopping is set: it ends at once */
        keep_free(k);
    }
}
