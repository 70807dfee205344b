/* catalog.c — GET /v1/catalog/services and /v1/catalog/service/:service, blocking
 * queries that ignore health. */
#include <stdio.h>
#include <string.h>

#include "registry.h"

struct catalog_params {
    char name[REG_MAX_NAME];
    char tags[REG_MAX_TAGS][REG_MAX_TAG];
    size_t ntags;
};

/* Appends the tags of src missing from dst (the union, in first-seen order). */
static bool union_tags(json_t *dst, const json_t *src)
{
    size_t i, k;
    json_t *t, *u;
    json_array_foreach(src, i, t) {
        bool seen = false;
        json_array_foreach(dst, k, u) {
            if (json_equal(t, u))
                seen = true;
        }
        if (!seen && json_array_append(dst, t) != 0)
            return false;
    }
    return true;
}

static json_t *services_query(const struct reg_state *st, const void *arg, uint64_t *index,
                            bool render)
{
    (void)arg;
    *index = st->index > 0 ? st->index : 1;
    if (!render)
        return NULL;
    json_t *out = json_object();
    for (size_t i = 0; out != NULL && i < st->nsvcs; i++) {
        const struct reg_service *svc = st->svcs[i];
        json_t *tags = json_object_get(out, svc->name);
        if (tags == NULL) {
            tags = json_array();
            if (tags == NULL || json_object_set_new(out, svc->name, tags) != 0) {
                json_decref(out);
                return NULL;
            }
        }
        if (!union_tags(tags, svc->tags)) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *service_query(const struct reg_state *st, const void *arg, uint64_t *index,
                            bool render)
{
    const struct catalog_params *p = arg;
    uint64_t idx = reg_state_name_index(st, p->name);
    *index = idx > 0 ? idx : 1;
    if (!render)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < st->nsvcs; i++) {
        const struct reg_service *svc = st->svcs[i];
        if (strcmp(svc->name, p->name) != 0 || !reg_has_tags(svc, p->tags, p->ntags))
            continue;
        if (json_array_append_new(out, reg_json_catalog_service(st, svc)) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static void get_services(struct ward_req *req, void *arg)
{
    struct catalog_params p;
    memset(&p, 0, sizeof p);
    if (reg_query_common(req))
        reg_block(arg, req, services_query, &p, sizeof p);
}

static void get_service(struct ward_req *req, void *arg)
{
    struct catalog_params p;
    memset(&p, 0, sizeof p);
    const char *name = ward_req_param(req, "service");
    if (name == NULL || name[0] == '\0') {
        reg_respond_error(req, 400, "Missing service name");
        return;
    }
    if (strlen(name) >= REG_MAX_NAME) {
        reg_respond_error(req, 400, "Bad request: name longer than %d bytes", REG_MAX_NAME - 1);
        return;
    }
    memcpy(p.name, name, strlen(name) + 1);
    const char *tag = NULL;
    for (size_t i = 0; ward_req_query_nth(req, "tag", i, &tag); i++) {
        if (i >= REG_MAX_TAGS || (tag != NULL && strlen(tag) >= REG_MAX_TAG)) {
            reg_respond_error(req, 400, "Bad request: at most %d tags of %d bytes", REG_MAX_TAGS,
                              REG_MAX_TAG - 1);
            return;
        }
        snprintf(p.tags[i], REG_MAX_TAG, "%s", tag != NULL ? tag : "");
        p.ntags = i + 1;
    }
    if (reg_query_common(req))
        reg_block(arg, req, service_query, &p, sizeof p);
}

static void missing_service(struct ward_req *req, void *arg)
{
    (void)arg;
    reg_respond_error(req, 400, "Missing service name");
}

enum ward_err reg_catalog_routes(struct ward_server *srv, struct reg_ctx *ctx)
{
    enum ward_err err = reg_route(srv, "GET", "/v1/catalog/services", get_services, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/catalog/service/{service}", get_service, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/catalog/service/", missing_service, ctx);
    return err;
}
