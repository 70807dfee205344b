/* health.c — GET /v1/health/service/:service, /v1/health/checks/:service and
 * /v1/health/state/:state, each a blocking query. */
#include <stdio.h>
#include <string.h>

#include "registry.h"

#define MAX_NAME REG_MAX_NAME
#define MAX_TAGS REG_MAX_TAGS
#define MAX_TAG REG_MAX_TAG

struct health_params {
    char name[MAX_NAME];
    char tags[MAX_TAGS][MAX_TAG];
    size_t ntags;
    bool passing;
};

static uint64_t at_least_one(uint64_t index) { return index > 0 ? index : 1; }

bool reg_has_tags(const struct reg_service *svc, const char (*tags)[MAX_TAG], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        size_t k;
        json_t *t;
        json_array_foreach(svc->tags, k, t) {
            if (strcmp(json_string_value(t), tags[i]) == 0)
                found = true;
        }
        if (!found)
            return false;
    }
    return true;
}

static json_t *entry(const struct reg_state *st, const struct reg_service *svc, bool passing)
{
    json_t *checks = json_array();
    json_t *service = reg_json_agent_service(svc, true);
    json_t *node = reg_json_node(st);
    bool all_passing = true;
    if (checks == NULL || service == NULL || node == NULL)
        goto fail;
    for (size_t i = 0; i < st->nchecks; i++) {
        const struct reg_check *c = st->checks[i];
        if (c->service_id[0] != '\0' && strcmp(c->service_id, svc->id) != 0)
            continue; /* node-level checks count for every instance */
        if (c->status != REG_PASSING)
            all_passing = false;
        if (json_array_append_new(checks, reg_json_check(st, c)) != 0)
            goto fail;
    }
    if (passing && !all_passing) {
        json_decref(checks);
        json_decref(service);
        json_decref(node);
        return json_null();
    }
    return json_pack("{s:o, s:o, s:o}", "Node", node, "Service", service, "Checks", checks);
fail:
    json_decref(checks);
    json_decref(service);
    json_decref(node);
    return NULL;
}

static json_t *service_query(const struct reg_state *st, const void *arg, uint64_t *index,
                            bool render)
{
    const struct health_params *p = arg;
    *index = at_least_one(reg_state_name_index(st, p->name));
    if (!render)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < st->nsvcs; i++) {
        const struct reg_service *svc = st->svcs[i];
        if (strcmp(svc->name, p->name) != 0 || !reg_has_tags(svc, p->tags, p->ntags))
            continue;
        json_t *e = entry(st, svc, p->passing);
        if (e == NULL) {
            json_decref(out);
            return NULL;
        }
        if (json_is_null(e))
            continue;
        if (json_array_append_new(out, e) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *checks_query(const struct reg_state *st, const void *arg, uint64_t *index,
                            bool render)
{
    const struct health_params *p = arg;
    *index = at_least_one(reg_state_name_index(st, p->name));
    if (!render)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < st->nchecks; i++) {
        const struct reg_check *c = st->checks[i];
        const struct reg_service *svc = reg_state_service(st, c->service_id);
        if (svc == NULL || strcmp(svc->name, p->name) != 0)
            continue;
        if (json_array_append_new(out, reg_json_check(st, c)) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *state_query(const struct reg_state *st, const void *arg, uint64_t *index,
                            bool render)
{
    const struct health_params *p = arg;
    *index = at_least_one(st->index);
    if (!render)
        return NULL;
    json_t *out = json_array();
    for (size_t i = 0; out != NULL && i < st->nchecks; i++) {
        const struct reg_check *c = st->checks[i];
        if (strcmp(p->name, "any") != 0 && strcmp(p->name, reg_status_name(c->status)) != 0)
            continue;
        if (json_array_append_new(out, reg_json_check(st, c)) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* Reads the path parameter and the query flags shared by the three endpoints; answers
 * 400 itself and returns false on bad input. */
static bool read_params(struct ward_req *req, const char *param, const char *missing,
                        struct health_params *p)
{
    const char *name = ward_req_param(req, param);
    memset(p, 0, sizeof *p);
    if (name == NULL || name[0] == '\0') {
        reg_respond_error(req, 400, "%s", missing);
        return false;
    }
    if (strlen(name) >= MAX_NAME) {
        reg_respond_error(req, 400, "Bad request: name longer than %d bytes", MAX_NAME - 1);
        return false;
    }
    memcpy(p->name, name, strlen(name) + 1);
    if (!reg_query_bool(req, "passing", &p->passing)) {
        reg_respond_error(req, 400, "Invalid value for ?passing");
        return false;
    }
    const char *tag = NULL;
    for (size_t i = 0; ward_req_query_nth(req, "tag", i, &tag); i++) {
        if (i >= MAX_TAGS || (tag != NULL && strlen(tag) >= MAX_TAG)) {
            reg_respond_error(req, 400, "Bad request: at most %d tags of %d bytes", MAX_TAGS, MAX_TAG - 1);
            return false;
        }
        snprintf(p->tags[i], MAX_TAG, "%s", tag != NULL ? tag : "");
        p->ntags = i + 1;
    }
    return reg_query_common(req);
}

static void get_service(struct ward_req *req, void *arg)
{
    struct health_params p;
    if (read_params(req, "service", "Missing service name", &p))
        reg_block(arg, req, service_query, &p, sizeof p);
}

static void get_checks(struct ward_req *req, void *arg)
{
    struct health_params p;
    if (read_params(req, "service", "Missing service name", &p))
        reg_block(arg, req, checks_query, &p, sizeof p);
}

static void get_state(struct ward_req *req, void *arg)
{
    struct health_params p;
    if (read_params(req, "state", "Missing check state", &p))
        reg_block(arg, req, state_query, &p, sizeof p);
}

static void missing_service(struct ward_req *req, void *arg)
{
    (void)arg;
    reg_respond_error(req, 400, "Missing service name");
}

static void missing_state(struct ward_req *req, void *arg)
{
    (void)arg;
    reg_respond_error(req, 400, "Missing check state");
}

enum ward_err reg_health_routes(struct ward_server *srv, struct reg_ctx *ctx)
{
    enum ward_err err = reg_route(srv, "GET", "/v1/health/service/{service}", get_service, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/health/checks/{service}", get_checks, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/health/state/{state}", get_state, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/health/service/", missing_service, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/health/checks/", missing_service, ctx);
    if (err == WARD_ERR_OK)
        err = reg_route(srv, "GET", "/v1/health/state/", missing_state, ctx);
    return err;
}
