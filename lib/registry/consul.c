/* consul.c — the consul registry backend: Consul's agent and health HTTP API, as
 * ward-registry and a real Consul agent serve it (registry-spec.md §A). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* A Go duration string for ns: "2s", "1500ms" or "10ns" (time.ParseDuration reads all). */
static void go_duration(int64_t ns, char *buf, size_t n)
{
    if (ns % NS_PER_S == 0)
        snprintf(buf, n, "%" PRId64 "s", ns / NS_PER_S);
    else if (ns % NS_PER_MS == 0)
        snprintf(buf, n, "%" PRId64 "ms", ns / NS_PER_MS);
    else
        snprintf(buf, n, "%" PRId64 "ns", ns);
}

/* Percent-encodes s (RFC 3986 unreserved kept) for a path segment; NULL on NOMEM. */
static char *escape(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1);
    if (out == NULL)
        return NULL;
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            *o++ = (char)*p;
        } else {
            snprintf(o, 4, "%%%02X", *p);
            o += 3;
        }
    }
    *o = '\0';
    return out;
}

/* One call to the agent: method on base+path, optional JSON body; status in *status. The
 * deadline is the request timeout plus extra (a blocking query's wait). */
static enum ward_err call(struct ward_registry *r, const char *method, const char *path,
                          json_t *body, int64_t extra, struct ward_http_result *res)
{
    enum ward_err err = WARD_ERR_NOMEM;
    size_t n = strlen(r->base) + strlen(path) + 1;
    char *url = malloc(n);
    if (url == NULL)
        goto fail;
    snprintf(url, n, "%s%s", r->base, path);
    const char *headers[2] = {r->token_header, NULL};
    char *text = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            goto fail;
    }
    struct ward_http_call c = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = text,
        .body_len = text != NULL ? strlen(text) : 0,
        .content_type = text != NULL ? "application/json" : NULL,
        .deadline = ward_clock_now(ward_clock_real()) + r->s.request_timeout + extra,
    };
    err = ward_httpc_do(r->http, &c, res);
    free(text);
fail:
    free(url);
    return err;
}

/* The register body of reg (registry-spec.md §A.3); NULL on NOMEM. */
static json_t *registration_json(const struct ward_registration *reg)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:i}", "ID", reg->id, "Name", reg->name, "Address",
                          reg->address, "Port", (json_int_t)reg->port);
    json_t *tags = json_array();
    json_t *meta = json_object();
    json_t *check = NULL;
    if (o == NULL || tags == NULL || meta == NULL)
        goto fail;
    for (size_t i = 0; reg->tags != NULL && reg->tags[i] != NULL; i++)
        if (json_array_append_new(tags, json_string(reg->tags[i])) != 0)
            goto fail;
    if (reg->version != NULL && json_object_set_new(meta, "version", json_string(reg->version)))
        goto fail;
    if (json_object_set(o, "Tags", tags) != 0 || json_object_set(o, "Meta", meta) != 0)
        goto fail;
    const char *path = reg->check_path != NULL ? reg->check_path : "/ready";
    if (*path != '\0') {
        char url[600], interval[32], timeout[32];
        bool v6 = strchr(reg->address, ':') != NULL && reg->address[0] != '[';
        snprintf(url, sizeof url, "http://%s%s%s:%u%s", v6 ? "[" : "", reg->address,
                 v6 ? "]" : "", (unsigned)reg->port, path);
        go_duration(reg->check_interval > 0 ? reg->check_interval : 2 * NS_PER_S, interval,
                    sizeof interval);
        go_duration(reg->check_timeout > 0 ? reg->check_timeout : NS_PER_S, timeout,
                    sizeof timeout);
        check = json_pack("{s:s, s:s, s:s, s:s}", "HTTP", url, "Interval", interval, "Timeout",
                          timeout, "Status",
                          reg->initial_status != NULL ? reg->initial_status : "passing");
        if (check == NULL)
            goto fail;
        if (reg->deregister_after > 0) {
            char after[32];
            go_duration(reg->deregister_after, after, sizeof after);
            if (json_object_set_new(check, "DeregisterCriticalServiceAfter", json_string(after)))
                goto fail;
        }
        if (json_object_set(o, "Check", check) != 0)
            goto fail;
    }
    json_decref(tags);
    json_decref(meta);
    json_decref(check);
    return o;
fail:
    json_decref(o);
    json_decref(tags);
    json_decref(meta);
    json_decref(check);
    return NULL;
}

enum ward_err ward__consul_register(struct ward_registry *r, const struct ward_registration *reg)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward_http_result res = {0};
    json_t *body = registration_json(reg);
    if (body == NULL)
        goto fail;
    err = call(r, "PUT", "/v1/agent/service/register", body, 0, &res);
    if (err == WARD_ERR_OK && res.status != 200)
        err = WARD_ERR_HTTP_STATUS;
fail:
    json_decref(body);
    ward_http_result_fini(&res);
    return err;
}

/* GET or PUT on prefix+escaped id; 404 is NOT_FOUND. */
static enum ward_err by_id(struct ward_registry *r, const char *method, const char *prefix,
                           const char *id)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward_http_result res = {0};
    char *eid = escape(id);
    char *path = NULL;
    if (eid == NULL)
        goto fail;
    size_t n = strlen(prefix) + strlen(eid) + 1;
    path = malloc(n);
    if (path == NULL)
        goto fail;
    snprintf(path, n, "%s%s", prefix, eid);
    err = call(r, method, path, NULL, 0, &res);
    if (err == WARD_ERR_OK && res.status == 404)
        err = WARD_ERR_NOT_FOUND;
    else if (err == WARD_ERR_OK && res.status != 200)
        err = WARD_ERR_HTTP_STATUS;
fail:
    free(eid);
    free(path);
    ward_http_result_fini(&res);
    return err;
}

enum ward_err ward__consul_deregister(struct ward_registry *r, const char *id)
{
    return by_id(r, "PUT", "/v1/agent/service/deregister/", id);
}

enum ward_err ward__consul_known(struct ward_registry *r, const char *id)
{
    return by_id(r, "GET", "/v1/agent/service/", id);
}

/* Adds the instances of a health answer to out (the service's address, else the node's). */
static enum ward_err parse_health(const json_t *arr, struct ward_instances *out)
{
    enum ward_err err = WARD_ERR_TYPE;
    if (!json_is_array(arr))
        goto fail;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e) {
        json_t *svc = json_object_get(e, "Service");
        const char *id = json_string_value(json_object_get(svc, "ID"));
        const char *name = json_string_value(json_object_get(svc, "Service"));
        const char *addr = json_string_value(json_object_get(svc, "Address"));
        json_int_t port = json_integer_value(json_object_get(svc, "Port"));
        if (addr == NULL || *addr == '\0')
            addr = json_string_value(json_object_get(json_object_get(e, "Node"), "Address"));
        if (id == NULL || name == NULL || addr == NULL || port < 0 || port > 65535)
            goto fail;
        err = ward__instances_push(out, id, name, addr, (uint16_t)port);
        if (err != WARD_ERR_OK)
            goto fail;
        err = WARD_ERR_TYPE;
    }
    ward__instances_sort(out);
    err = WARD_ERR_OK;
fail:
    return err;
}

enum ward_err ward__consul_health(struct ward_registry *r, const char *name, uint64_t index,
                                  int64_t wait, uint64_t *index_out, struct ward_instances *out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    struct ward_http_result res = {0};
    json_t *doc = NULL;
    char *ename = escape(name);
    if (ename == NULL)
        goto fail;
    char path[1024], w[32];
    go_duration(wait, w, sizeof w);
    if (index > 0)
        snprintf(path, sizeof path, "/v1/health/service/%s?passing&index=%" PRIu64 "&wait=%s",
                 ename, index, w);
    else
        snprintf(path, sizeof path, "/v1/health/service/%s?passing", ename);
    err = call(r, "GET", path, NULL, index > 0 ? wait + wait / 16 : 0, &res);
    if (err != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_HTTP_STATUS;
    if (res.status != 200)
        goto fail;
    const char *hdr = ward_http_result_header(&res, "X-Consul-Index");
    uint64_t got = hdr != NULL ? strtoull(hdr, NULL, 10) : 0;
    *index_out = got == 0 ? 1 : got;
    err = WARD_ERR_TYPE;
    doc = json_loadb(res.body, res.body_len, 0, NULL);
    if (doc == NULL)
        goto fail;
    err = parse_health(doc, out);
fail:
    if (err != WARD_ERR_OK)
        ward_instances_fini(out);
    free(ename);
    json_decref(doc);
    ward_http_result_fini(&res);
    return err;
}
