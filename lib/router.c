/* router.c — method + path routing with {param} segments, and the Allow list for 405. */
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

/* Splits a path into at most max segments in place; returns the count or -1. The path
 * "/" has zero segments; empty segments ("//", trailing "/") are kept, so they never
 * match a pattern segment and the route is strict. */
static int split(char *path, char **segs, size_t max)
{
    size_t n = 0;
    if (path[0] != '/')
        return -1;
    if (path[1] == '\0')
        return 0;
    char *p = path + 1;
    for (;;) {
        if (n == max)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return (int)n;
}

static bool is_param(const char *seg)
{
    size_t n = strlen(seg);
    return n > 2 && seg[0] == '{' && seg[n - 1] == '}';
}

static void route_free(struct ward_route *rt)
{
    if (rt == NULL)
        return;
    free(rt->method);
    free(rt->pattern);
    for (size_t i = 0; i < rt->nseg; i++)
        free(rt->segs[i]);
    free(rt);
}

enum ward_err ward__router_add(struct ward_router *r, const char *method, const char *pattern,
                               ward_handler_fn fn, void *arg, struct ward_route **out)
{
    enum ward_err err = WARD_ERR_NOMEM;
    char *copy = NULL;
    struct ward_route *rt = calloc(1, sizeof *rt);
    if (rt == NULL)
        goto fail;
    rt->method = strdup(method);
    rt->pattern = strdup(pattern);
    copy = strdup(pattern);
    if (rt->method == NULL || rt->pattern == NULL || copy == NULL)
        goto fail;
    rt->fn = fn;
    rt->arg = arg;
    char *segs[WARD_MAX_SEGMENTS];
    int n = split(copy, segs, WARD_MAX_SEGMENTS);
    if (n < 0) {
        err = WARD_ERR_INVAL;
        goto fail;
    }
    size_t nparams = 0;
    for (int i = 0; i < n; i++) {
        rt->segs[i] = strdup(segs[i]);
        if (rt->segs[i] == NULL)
            goto fail;
        rt->nseg = (size_t)i + 1;
        if (is_param(segs[i]) && ++nparams > WARD_MAX_PARAMS) {
            err = WARD_ERR_INVAL;
            goto fail;
        }
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct ward_route **grown = realloc(r->routes, cap * sizeof *grown);
        if (grown == NULL)
            goto fail;
        r->routes = grown;
        r->cap = cap;
    }
    r->routes[r->n++] = rt;
    *out = rt;
    free(copy);
    return WARD_ERR_OK;
fail:
    free(copy);
    route_free(rt);
    return err;
}

/* Matches the path segments against rt; fills params of req when req is not NULL. */
static bool match_path(const struct ward_route *rt, char **segs, size_t n, struct ward_req *req)
{
    if (n != rt->nseg)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (is_param(rt->segs[i])) {
            if (segs[i][0] == '\0')
                return false;
        } else if (strcmp(rt->segs[i], segs[i]) != 0) {
            return false;
        }
    }
    if (req == NULL)
        return true;
    for (size_t i = 0; i < n; i++) {
        if (!is_param(rt->segs[i]))
            continue;
        struct ward_param *p = &req->params[req->nparams];
        p->name = rt->segs[i];
        p->value = strdup(segs[i]);
        if (p->value == NULL)
            return false;
        req->nparams++;
    }
    return true;
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

enum ward_match ward__router_match(const struct ward_router *r, struct ward_req *req)
{
    char buf[1024];
    char *segs[WARD_MAX_SEGMENTS];
    size_t len = strlen(req->path);
    if (len >= sizeof buf)
        return WARD_MATCH_NOT_FOUND;
    memcpy(buf, req->path, len + 1);
    int n = split(buf, segs, WARD_MAX_SEGMENTS);
    if (n < 0)
        return WARD_MATCH_NOT_FOUND;
    bool path_seen = false;
    for (size_t i = 0; i < r->n; i++) {
        struct ward_route *rt = r->routes[i];
        if (!match_path(rt, segs, (size_t)n, NULL))
            continue;
        path_seen = true;
        if (method_matches(rt->method, req->method)) {
            req->route = rt;
            return match_path(rt, segs, (size_t)n, req) ? WARD_MATCH_OK : WARD_MATCH_NOT_FOUND;
        }
    }
    return path_seen ? WARD_MATCH_BAD_METHOD : WARD_MATCH_NOT_FOUND;
}

void ward__router_allow(const struct ward_router *r, const char *path, char *out, size_t size)
{
    char buf[1024];
    char *segs[WARD_MAX_SEGMENTS];
    size_t used = 0;
    out[0] = '\0';
    size_t len = strlen(path);
    if (len >= sizeof buf)
        return;
    memcpy(buf, path, len + 1);
    int n = split(buf, segs, WARD_MAX_SEGMENTS);
    if (n < 0)
        return;
    for (size_t i = 0; i < r->n; i++) {
        const struct ward_route *rt = r->routes[i];
        if (!match_path(rt, segs, (size_t)n, NULL) || strstr(out, rt->method) != NULL)
            continue;
        const char *extra = strcmp(rt->method, "GET") == 0 ? ", HEAD" : "";
        int w = snprintf(out + used, size - used, "%s%s%s", used ? ", " : "", rt->method, extra);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}

void ward__route_free_params(struct ward_req *req)
{
    for (size_t i = 0; i < req->nparams; i++)
        free(req->params[i].value);
    req->nparams = 0;
}

void ward__router_free(struct ward_router *r)
{
    for (size_t i = 0; i < r->n; i++)
        route_free(r->routes[i]);
    free(r->routes);
    r->routes = NULL;
    r->n = r->cap = 0;
}
