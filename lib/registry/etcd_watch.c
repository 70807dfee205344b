/* etcd_watch.c — the etcd watch of one service: a range over its prefix gives the
 * instances and a revision R, then a /v3/watch stream from R + 1 applies each PUT and
 * DELETE to the cache. The stream is newline-delimited JSON over a chunked response that
 * never ends by itself, so it runs on a curl multi handle (no total timeout; woken at once
 * to stop) and messages are cut out of the bytes as they arrive, whatever the chunking.
 * A cancel, a compaction, an error message, a disconnect or a stream silent for longer
 * than progress notifications allow: range again and watch anew. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

#define NS_PER_MS INT64_C(1000000)
#define LINE_MAX_BYTES ((size_t)64 << 20) /* one watch response; etcd's own limit is 1.5 MiB */

/* The instances under the prefix, each with its etcd key (same index). */
struct kvset {
    struct ward_instances list;
    char **keys;
};

struct stream {
    struct ward__reg_watch *w;
    struct kvset *set;
    char *buf; /* bytes of a message not yet complete */
    size_t len, cap;
    bool changed;   /* the set changed since the last publish */
    bool restart;   /* the watch is dead: range again */
    bool created;   /* etcd acknowledged the watch */
    bool oom;
    int64_t last_byte;
};

static int64_t now_ns(void)
{
    return ward_clock_now(ward_clock_real());
}

static void set_fini(struct kvset *s)
{
    for (size_t i = 0; s->keys != NULL && i < s->list.len; i++)
        free(s->keys[i]);
    free(s->keys);
    s->keys = NULL;
    ward_instances_fini(&s->list);
}

/* Removes the entry of key, if any; true when there was one. */
static bool set_remove(struct kvset *s, const char *key)
{
    for (size_t i = 0; i < s->list.len; i++) {
        if (strcmp(s->keys[i], key) != 0)
            continue;
        struct ward_instance *in = &s->list.items[i];
        free(in->id);
        free(in->name);
        free(in->address);
        free(s->keys[i]);
        s->list.len--;
        s->list.items[i] = s->list.items[s->list.len];
        s->keys[i] = s->keys[s->list.len];
        return true;
    }
    return false;
}

/* Applies one event: a PUT replaces (or, with a value that is not an endpoints Add,
 * removes) the key's entry; a DELETE removes it. */
static enum ward_err apply_event(struct stream *st, const json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "type"));
    const json_t *kv = json_object_get(ev, "kv");
    const char *k64 = json_string_value(json_object_get(kv, "key"));
    size_t klen = 0;
    char *key = k64 != NULL ? ward__b64_decode(k64, &klen) : NULL;
    if (key == NULL)
        return WARD_ERR_OK; /* not ours to understand */
    st->changed |= set_remove(st->set, key);
    free(key);
    if (type != NULL && strcmp(type, "PUT") != 0) /* PUT is enum 0: no "type" at all */
        return WARD_ERR_OK;
    char **keys = realloc(st->set->keys, (st->set->list.len + 2) * sizeof *keys);
    if (keys == NULL)
        return WARD_ERR_NOMEM;
    st->set->keys = keys;
    char *added = NULL;
    enum ward_err err = ward__etcd_kv_instance(kv, st->w->name, &added, &st->set->list);
    if (err == WARD_ERR_OK) {
        keys[st->set->list.len - 1] = added;
        st->changed = true;
    }
    return err == WARD_ERR_NOMEM ? err : WARD_ERR_OK;
}

/* One message of the stream. */
static void on_message(struct stream *st, const char *text, size_t n)
{
    json_t *doc = json_loadb(text, n, 0, NULL);
    json_t *res = json_object_get(doc, "result");
    size_t i;
    json_t *ev;

    if (res == NULL || json_object_get(doc, "error") != NULL) {
        st->restart = true; /* a mid-stream error, or not etcd */
    } else if (json_is_true(json_object_get(res, "canceled")) ||
               ward__etcd_int(res, "compact_revision") != 0) {
        st->restart = true; /* compacted past our revision, or cancelled by the server */
    } else {
        st->created |= json_is_true(json_object_get(res, "created"));
        json_array_foreach(json_object_get(res, "events"), i, ev)
            if (apply_event(st, ev) != WARD_ERR_OK) {
                st->oom = true;
                st->restart = true;
                break;
            }
    }
    json_decref(doc);
}

/* curl's write callback: appends, then handles every complete line. */
static size_t on_bytes(char *data, size_t size, size_t n, void *arg)
{
    struct stream *st = arg;
    size_t len = size * n;

    st->last_byte = now_ns();
    if (st->len + len > LINE_MAX_BYTES)
        return 0; /* aborts the transfer: range again */
    if (st->len + len > st->cap) {
        size_t cap = st->cap > 0 ? st->cap : 4096;
        while (cap < st->len + len)
            cap *= 2;
        char *buf = realloc(st->buf, cap);
        if (buf == NULL)
            return 0;
        st->buf = buf;
        st->cap = cap;
    }
    memcpy(st->buf + st->len, data, len);
    st->len += len;
    size_t start = 0;
    for (size_t i = 0; i < st->len && !st->restart; i++) {
        if (st->buf[i] != '\n')
            continue;
        if (i > start)
            on_message(st, st->buf + start, i - start);
        start = i + 1;
    }
    memmove(st->buf, st->buf + start, st->len - start);
    st->len -= start;
    return len;
}

/* Publishes a sorted copy of the set. */
static void publish(struct ward__reg_watch *w, const struct kvset *set, bool first)
{
    struct ward_instances copy = {0};
    if (ward__instances_copy(&set->list, &copy) != WARD_ERR_OK)
        return;
    ward__instances_sort(&copy);
    ward__watch_publish(w, &copy, first);
    ward_instances_fini(&copy);
}

/* The create_request from revision. */
static char *watch_body(const char *name, int64_t revision)
{
    char *prefix = ward__etcd_prefix(name);
    json_t *range = prefix != NULL ? ward__etcd_prefix_range(prefix) : NULL;
    char rev[32];
    char *text = NULL;
    snprintf(rev, sizeof rev, "%" PRId64, revision);
    if (range != NULL && json_object_set_new(range, "start_revision", json_string(rev)) == 0 &&
        json_object_set_new(range, "progress_notify", json_true()) == 0) {
        json_t *o = json_pack("{s:O}", "create_request", range);
        text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
    }
    json_decref(range);
    free(prefix);
    return text;
}

/* Whether the registry is stopping; also hands the stream's multi handle to free. */
static bool stopping(struct ward_registry *r, struct ward__reg_watch *w, CURLM *m)
{
    pthread_mutex_lock(&r->lock);
    bool stop = r->stopping;
    w->wake = stop ? NULL : m;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

/* Follows the stream on endpoint `at` from revision until it dies or r stops. */
static void run_stream(struct ward__reg_watch *w, struct stream *st, size_t at,
                       const char *body)
{
    struct ward_registry *r = w->r;
    char url[300];
    CURL *e = curl_easy_init();
    CURLM *m = curl_multi_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    int running = 1;

    snprintf(url, sizeof url, "%s/v3/watch", r->endpoints[at]);
    if (e == NULL || m == NULL || hdr == NULL)
        goto done;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(r->s.request_timeout / NS_PER_MS));
    curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L); /* a 4xx/5xx is no stream */
    if (curl_multi_add_handle(m, e) != CURLM_OK)
        goto done;
    st->last_byte = now_ns();
    while (running > 0 && !st->restart && !stopping(r, w, m)) {
        if (curl_multi_perform(m, &running) != CURLM_OK)
            break;
        if (st->changed) {
            publish(w, st->set, false);
            st->changed = false;
        }
        if (now_ns() - st->last_byte > r->s.watch_silence)
            break; /* not even a progress notification: the connection is dead */
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 1000, NULL);
    }
    pthread_mutex_lock(&r->lock);
    w->wake = NULL;
    pthread_mutex_unlock(&r->lock);
    curl_multi_remove_handle(m, e);
done:
    curl_slist_free_all(hdr);
    curl_multi_cleanup(m);
    curl_easy_cleanup(e);
}

void *ward__etcd_watch_main(void *arg)
{
    struct ward__reg_watch *w = arg;
    struct ward_registry *r = w->r;
    struct ward_retry_state rs;
    bool first = true;
    ward_retry_state_init(&rs);
    for (;;) {
        struct kvset set = {0};
        int64_t revision = 0;
        enum ward_err err = ward__etcd_range(r, w->name, &set.list, &set.keys, &revision);
        if (err == WARD_ERR_OK) {
            publish(w, &set, first);
            first = false;
            char *body = watch_body(w->name, revision + 1);
            struct stream st = {.w = w, .set = &set};
            if (body != NULL)
                run_stream(w, &st, atomic_load(&r->current), body);
            free(body);
            free(st.buf);
            err = st.created && !st.oom ? WARD_ERR_OK : WARD_ERR_TRANSPORT;
            if (!st.created) /* this member would not stream: try the next one */
                atomic_store(&r->current, (atomic_load(&r->current) + 1) % r->n_endpoints);
        }
        set_fini(&set);
        if (err == WARD_ERR_OK) {
            rs.attempts = 0;
            rs.last_delay_ns = 0;
        } else {
            rs.attempts++;
            rs.last_delay_ns = ward_retry_next_delay(&r->s.backoff, rs.attempts,
                                                     rs.last_delay_ns, &rs.rng);
        }
        /* a stream that lived: read again at once; a failure: back off (the cache stays) */
        if (!ward__reg_pause(r, NULL, err == WARD_ERR_OK ? 0 : rs.last_delay_ns))
            break;
    }
    return NULL;
}
