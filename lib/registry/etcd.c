/* etcd.c — the etcd registry backend's unary side: endpoint failover over the v3 JSON
 * gateway (registry-spec.md §B: POST with JSON, keys and values base64, int64 as strings,
 * defaults omitted), etcd's endpoints format for instances, and discovery by range. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

#define PREFIX "services/"

enum ward_err ward__etcd_parse(struct ward_registry *r, const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p != '\0'; p++)
        n += *p == ',';
    r->endpoints = calloc(n, sizeof *r->endpoints);
    if (r->endpoints == NULL)
        return WARD_ERR_NOMEM;
    for (const char *e = list;; e++) {
        const char *end = strchr(e, ',');
        size_t len = end != NULL ? (size_t)(end - e) : strlen(e);
        if (len > 0 && e[len - 1] == '/')
            len--;
        char *host = NULL;
        uint16_t port = 0;
        enum ward_err err = ward__parse_hostport(e, len, &host, &port);
        if (err != WARD_ERR_OK)
            return err;
        size_t size = strlen(host) + 16;
        char *url = malloc(size);
        if (url != NULL)
            snprintf(url, size, "http://%s:%u", host, (unsigned)port);
        free(host);
        if (url == NULL)
            return WARD_ERR_NOMEM;
        r->endpoints[r->n_endpoints++] = url;
        if (end == NULL)
            break;
        e = end;
    }
    return WARD_ERR_OK;
}

/* Whether an answer says "this member cannot serve now; another may". */
static bool try_next(enum ward_err err, long status)
{
    return err == WARD_ERR_CONNECT || err == WARD_ERR_TRANSPORT || err == WARD_ERR_TIMEOUT ||
           err == WARD_ERR_DEADLINE || (err == WARD_ERR_OK && (status == 502 || status == 503 ||
                                                               status == 504));
}

enum ward_err ward__etcd_call(struct ward_registry *r, const char *path, json_t *body,
                              json_t **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    char *text = json_dumps(body, JSON_COMPACT);
    size_t start = atomic_load(&r->current);
    long status;

    *out = NULL;
    if (text == NULL)
        return err;
    for (size_t i = 0; i < r->n_endpoints; i++) {
        size_t at = (start + i) % r->n_endpoints;
        char url[300];
        struct ward_http_result res = {0};
        snprintf(url, sizeof url, "%s%s", r->endpoints[at], path);
        struct ward_http_call c = {
            .method = "POST",
            .url = url,
            .body = text,
            .body_len = strlen(text),
            .content_type = "application/json",
            .deadline = ward_clock_now(ward_clock_real()) + r->s.request_timeout,
        };
        err = ward_httpc_do(r->http, &c, &res);
        status = res.status;
        if (!try_next(err, status)) {
            atomic_store(&r->current, at);
            if (err == WARD_ERR_OK && status != 200) {
                err = status == 404 ? WARD_ERR_NOT_FOUND : WARD_ERR_HTTP_STATUS;
            } else if (err == WARD_ERR_OK) {
                /* a stream's answer is {"result":...}\n lines; the first is all we need */
                *out = json_loadb(res.body, res.body_len, JSON_DISABLE_EOF_CHECK, NULL);
                err = *out == NULL ? WARD_ERR_TYPE : WARD_ERR_OK;
            }
            ward_http_result_fini(&res);
            break;
        }
        ward_http_result_fini(&res);
    }
    free(text);
    return err;
}

int64_t ward__etcd_int(const json_t *o, const char *field)
{
    const json_t *v = json_object_get(o, field);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    const char *s = json_string_value(v);
    return s != NULL ? (int64_t)strtoll(s, NULL, 10) : 0; /* absent: proto3's default 0 */
}

char *ward__etcd_prefix(const char *name)
{
    size_t n = sizeof PREFIX + strlen(name) + 1;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, PREFIX "%s/", name);
    return p;
}

char *ward__etcd_key(const char *name, const char *address, uint16_t port)
{
    bool v6 = strchr(address, ':') != NULL && address[0] != '[';
    size_t n = sizeof PREFIX + strlen(name) + strlen(address) + 16;
    char *k = malloc(n);
    if (k != NULL)
        snprintf(k, n, PREFIX "%s/%s%s%s:%u", name, v6 ? "[" : "", address, v6 ? "]" : "",
                 (unsigned)port);
    return k;
}

/* The range body for every key under prefix: [prefix, prefix with its last byte + 1). The
 * prefix ends in '/', so that byte is never 0xFF and the rule of clientv3's getPrefix
 * reduces to one increment. */
json_t *ward__etcd_prefix_range(const char *prefix)
{
    size_t n = strlen(prefix);
    char *end = strdup(prefix);
    char *k = ward__b64_encode(prefix, n);
    char *e = NULL;
    json_t *o = NULL;
    if (end != NULL && k != NULL) {
        end[n - 1]++;
        e = ward__b64_encode(end, n);
    }
    if (e != NULL)
        o = json_pack("{s:s, s:s}", "key", k, "range_end", e);
    free(end);
    free(k);
    free(e);
    return o;
}

enum ward_err ward__etcd_kv_instance(const json_t *kv, const char *name, char **key,
                                     struct ward_instances *into)
{
    enum ward_err err = WARD_ERR_TYPE;
    size_t klen = 0, vlen = 0;
    const char *k64 = json_string_value(json_object_get(kv, "key"));
    const char *v64 = json_string_value(json_object_get(kv, "value"));
    char *value = v64 != NULL ? ward__b64_decode(v64, &vlen) : NULL;
    json_t *doc = value != NULL ? json_loadb(value, vlen, 0, NULL) : NULL;
    char *host = NULL;
    uint16_t port = 0;

    *key = k64 != NULL ? ward__b64_decode(k64, &klen) : NULL;
    if (*key == NULL || doc == NULL || ward__etcd_int(doc, "Op") != 0)
        goto done;
    const char *addr = json_string_value(json_object_get(doc, "Addr"));
    if (addr == NULL || ward__parse_hostport(addr, strlen(addr), &host, &port) != WARD_ERR_OK)
        goto done;
    if (host[0] == '[') { /* "[::1]:80": the instance's address is the bare IPv6 one */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    const char *id = json_string_value(json_object_get(json_object_get(doc, "Metadata"), "id"));
    err = ward__instances_push(into, id != NULL ? id : addr, name, host, port);
done:
    if (err != WARD_ERR_OK) {
        free(*key);
        *key = NULL;
    }
    free(host);
    json_decref(doc);
    free(value);
    return err;
}

enum ward_err ward__etcd_range(struct ward_registry *r, const char *name,
                               struct ward_instances *out, char ***keys, int64_t *revision)
{
    char *prefix = ward__etcd_prefix(name);
    json_t *body = prefix != NULL ? ward__etcd_prefix_range(prefix) : NULL;
    json_t *res = NULL;
    enum ward_err err = WARD_ERR_NOMEM;
    size_t i;
    json_t *kv;

    *out = (struct ward_instances){0};
    if (keys != NULL)
        *keys = NULL;
    if (body == NULL)
        goto done;
    err = ward__etcd_call(r, "/v3/kv/range", body, &res);
    if (err != WARD_ERR_OK)
        goto done;
    json_t *kvs = json_object_get(res, "kvs");
    *revision = ward__etcd_int(json_object_get(res, "header"), "revision");
    if (keys != NULL) {
        *keys = calloc(json_array_size(kvs) + 1, sizeof **keys);
        err = WARD_ERR_NOMEM;
        if (*keys == NULL)
            goto done;
    }
    err = WARD_ERR_OK;
    size_t kept = 0;
    json_array_foreach(kvs, i, kv) {
        char *key = NULL;
        enum ward_err e = ward__etcd_kv_instance(kv, name, &key, out);
        if (e == WARD_ERR_NOMEM) {
            err = e;
            break;
        }
        if (e == WARD_ERR_OK && keys != NULL)
            (*keys)[kept++] = key; /* in the order of out's items */
        else
            free(key); /* a value that does not parse is skipped, as etcd's resolver does */
    }
done:
    if (err != WARD_ERR_OK) {
        ward_instances_fini(out);
        if (keys != NULL && *keys != NULL) {
            for (char **k = *keys; *k != NULL; k++)
                free(*k);
            free(*keys);
            *keys = NULL;
        }
    }
    json_decref(res);
    json_decref(body);
    free(prefix);
    return err;
}

enum ward_err ward__etcd_discover(struct ward_registry *r, const char *name,
                                  struct ward_instances *out)
{
    int64_t revision = 0;
    enum ward_err err = ward__etcd_range(r, name, out, NULL, &revision);
    if (err == WARD_ERR_OK)
        ward__instances_sort(out);
    return err;
}
