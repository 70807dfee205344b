/* agent.c — the /v1/agent endpoints: service register and deregister, the local service
 * and check lists, TTL check updates (pass, warn, fail, update) and agent/self. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

/* The body as JSON, or a 400 in Go's decoder words. */
static json_t *read_body(struct ward_req *req)
{
    size_t len = 0;
    const char *body = ward_req_body(req, &len);
    json_error_t jerr;
    if (body == NULL || len == 0) {
        reg_respond_error(req, 400, "Request decode failed: EOF");
        return NULL;
    }
    json_t *doc = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        reg_respond_error(req, 400, "Request decode failed: %s (line %d, column %d)", jerr.text,
                          jerr.line, jerr.column);
    return doc;
}

static void put_register(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    struct reg_service *svc = NULL;
    struct reg_check **checks = NULL;
    size_t n = 0;
    const char *v = NULL;
    bool replace = ward_req_query_nth(req, "replace-existing-checks", 0, &v) &&
                   (v == NULL || v[0] == '\0' || strcmp(v, "true") == 0);
    json_t *body = read_body(req);
    if (body == NULL)
        return;
    if (reg_decode_service(req, body, &svc, &checks, &n)) {
        char id[256];
        snprintf(id, sizeof id, "%s", svc->id);
        reg_state_lock(ctx->st);
        enum ward_err err = reg_state_register(ctx->st, svc, checks, n, replace);
        reg_state_unlock(ctx->st);
        if (err == WARD_ERR_OK) {
            WARD_INFO(ctx->log, ward_req_log_ctx(req), "service registered", WARD_S("service_id", id),
                      WARD_I("checks", (int64_t)n));
            reg_respond_empty(req);
        } else {
            reg_respond_error(req, 500, "%s", ward_strerror(err));
        }
        free(checks);
    }
    json_decref(body);
}

static void put_deregister(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    const char *id = ward_req_param(req, "id");
    reg_state_lock(ctx->st);
    bool found = reg_state_deregister(ctx->st, id);
    reg_state_unlock(ctx->st);
    if (!found) {
        reg_respond_error(req, 404, "Unknown service ID \"%s\". Ensure that the service ID is passed, not the service name.", id);
        return;
    }
    WARD_INFO(ctx->log, ward_req_log_ctx(req), "service deregistered", WARD_S("service_id", id));
    reg_respond_empty(req);
}

static void get_services(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    json_t *out = json_object();
    reg_state_lock(ctx->st);
    for (size_t i = 0; out != NULL && i < ctx->st->nsvcs; i++) {
        const struct reg_service *svc = ctx->st->svcs[i];
        if (json_object_set_new(out, svc->id, reg_json_agent_service(svc, false)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    reg_state_unlock(ctx->st);
    reg_respond_json(req, out, 0);
}

/* FNV-1a of the service's JSON text: Consul's hashes are opaque, only equality counts.
 * false when out of memory. */
static bool content_hash(const json_t *svc, uint64_t *out)
{
    char *text = json_dumps(svc, JSON_COMPACT | JSON_SORT_KEYS);
    uint64_t h = UINT64_C(14695981039346656037);
    for (const char *p = text; p != NULL && *p != '\0'; p++) {
        h ^= (unsigned char)*p;
        h *= UINT64_C(1099511628211);
    }
    *out = h;
    free(text);
    return text != NULL;
}

/* The hash query of GET /agent/service/:id; params is the service ID (a string). */
static bool service_query(const struct reg_state *st, const void *params, uint64_t *hash,
                          struct ward_req *req)
{
    const char *id = params;
    char text[17];
    int status = 200;
    const struct reg_service *svc = reg_state_service(st, id);
    json_t *out = svc != NULL ? reg_json_agent_service(svc, false) : NULL;
    *hash = 0;
    if (svc == NULL)
        status = 404;
    else if (out == NULL || !content_hash(out, hash))
        status = 500;
    if (req != NULL && status == 200) {
        snprintf(text, sizeof text, "%016llx", (unsigned long long)*hash);
        if (json_object_set_new(out, "ContentHash", json_string(text)) != 0 ||
            ward_req_set_header(req, "X-Consul-ContentHash", text) != WARD_ERR_OK)
            status = 500;
    }
    if (req == NULL) {
        json_decref(out);
    } else if (status == 200) {
        reg_respond_json(req, out, 0); /* takes out */
    } else {
        json_decref(out);
        if (status == 404)
            reg_respond_error(req, 404, "unknown service ID: %s", id);
        else
            reg_respond_error(req, 500, "out of memory");
    }
    return status == 200;
}

static void get_service(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    const char *id = ward_req_param(req, "id");
    if (strcmp(id, "register") == 0) { /* the register route's path, asked with GET */
        if (ward_req_set_header(req, "Allow", "OPTIONS,PUT") != WARD_ERR_OK)
            reg_respond_error(req, 500, "out of memory");
        else
            reg_respond_error(req, 405, "method %s not allowed", ward_req_method(req));
        return;
    }
    reg_block_hash(ctx, req, service_query, id, strlen(id) + 1);
}

static void get_checks(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    json_t *out = json_object();
    reg_state_lock(ctx->st);
    reg_state_tick(ctx->st);
    for (size_t i = 0; out != NULL && i < ctx->st->nchecks; i++) {
        const struct reg_check *c = ctx->st->checks[i];
        if (c->kind == REG_CHECK_NODE)
            continue;
        if (json_object_set_new(out, c->id, reg_json_check(ctx->st, c)) != 0) {
            json_decref(out);
            out = NULL;
        }
    }
    reg_state_unlock(ctx->st);
    reg_respond_json(req, out, 0);
}

/* Sets a TTL check's status and output, with Consul's errors for unknown and non-TTL
 * checks. */
static void update_ttl(struct reg_ctx *ctx, struct ward_req *req, enum reg_status status,
                       const char *output)
{
    const char *id = ward_req_param(req, "id");
    reg_state_lock(ctx->st);
    struct reg_check *c = reg_state_check(ctx->st, id);
    enum ward_err err = WARD_ERR_OK;
    bool ttl = c != NULL && c->kind == REG_CHECK_TTL;
    if (ttl)
        err = reg_state_update_check(ctx->st, c, status, output);
    reg_state_unlock(ctx->st);
    if (c == NULL)
        reg_respond_error(req, 404, "Unknown check ID \"%s\". Ensure that the check ID is passed, not the check name.", id);
    else if (!ttl)
        reg_respond_error(req, 500, "CheckID \"%s\" does not have associated TTL", id);
    else if (err != WARD_ERR_OK)
        reg_respond_error(req, 500, "%s", ward_strerror(err));
    else
        reg_respond_empty(req);
}

static void put_note(struct ward_req *req, void *arg, enum reg_status status)
{
    const char *note = NULL;
    if (!ward_req_query_nth(req, "note", 0, &note) || note == NULL)
        note = "";
    update_ttl(arg, req, status, note);
}

static void put_pass(struct ward_req *req, void *arg) { put_note(req, arg, REG_PASSING); }
static void put_warn(struct ward_req *req, void *arg) { put_note(req, arg, REG_WARNING); }
static void put_fail(struct ward_req *req, void *arg) { put_note(req, arg, REG_CRITICAL); }

static void put_update(struct ward_req *req, void *arg)
{
    json_t *body = read_body(req);
    if (body == NULL)
        return;
    json_t *s = reg_json_get(body, "Status");
    json_t *o = reg_json_get(body, "Output");
    enum reg_status status = REG_CRITICAL;
    if (!json_is_object(body) || (s != NULL && !json_is_string(s) && !json_is_null(s)) ||
        (o != NULL && !json_is_string(o) && !json_is_null(o))) {
        reg_respond_error(req, 400, "Request decode failed: json: cannot unmarshal into Go value of type checkUpdate");
    } else if (!reg_status_parse(json_is_string(s) ? json_string_value(s) : "", &status)) {
        reg_respond_error(req, 400, "Invalid check status: '%s'", json_is_string(s) ? json_string_value(s) : "");
    } else {
        update_ttl(arg, req, status, json_is_string(o) ? json_string_value(o) : "");
    }
    json_decref(body);
}

static void put_check_register(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    struct reg_check *c = NULL;
    json_t *body = read_body(req);
    if (body == NULL)
        return;
    if (!reg_decode_check(req, body, &c))
        goto out;
    char sid[256];
    snprintf(sid, sizeof sid, "%s", c->service_id);
    reg_state_lock(ctx->st);
    bool known = sid[0] == '\0' || reg_state_service(ctx->st, sid) != NULL;
    enum ward_err err = WARD_ERR_OK;
    if (known)
        err = reg_state_add_check(ctx->st, c);
    else
        reg_check_free(c);
    reg_state_unlock(ctx->st);
    if (!known)
        reg_respond_error(req, 404, "ServiceID \"%s\" does not exist", sid);
    else if (err != WARD_ERR_OK)
        reg_respond_error(req, 500, "%s", ward_strerror(err));
    else
        reg_respond_empty(req);
out:
    json_decref(body);
}

static void put_check_deregister(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    const char *id = ward_req_param(req, "id");
    reg_state_lock(ctx->st);
    bool found = reg_state_remove_check(ctx->st, id);
    reg_state_unlock(ctx->st);
    if (found)
        reg_respond_empty(req);
    else
        reg_respond_error(req, 404, "Unknown check ID \"%s\". Ensure that the check ID is passed, not the check name.", id);
}

static void get_self(struct ward_req *req, void *arg)
{
    struct reg_ctx *ctx = arg;
    json_t *out = json_pack(
        "{s:{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:s}, "
        "s:{s:s, s:s, s:i, s:{s:s, s:s, s:s}, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, "
        "s:{}, s:n, s:{}, s:{}}",
        "Config", "Datacenter", REG_DC, "PrimaryDatacenter", REG_DC, "NodeName", REG_NODE, "NodeID",
        ctx->st->node_id, "Revision", "ward-registry", "Server", true, "Version", WARD_VERSION,
        "BuildDate", "", "Member", "Name", REG_NODE, "Addr", REG_NODE_ADDRESS, "Port", 8301, "Tags",
        "dc", REG_DC, "role", "consul", "build", WARD_VERSION, "Status", 1, "ProtocolMin", 1,
        "ProtocolMax", 5, "ProtocolCur", 2, "DelegateMin", 2, "DelegateMax", 5, "DelegateCur", 4,
        "DebugConfig", "Coord", "Stats", "Meta");
    reg_respond_json(req, out, 0);
}

enum ward_err reg_agent_routes(struct ward_server *srv, struct reg_ctx *ctx)
{
    static const struct {
        const char *method, *pattern;
        ward_handler_fn fn;
    } routes[] = {
        {"PUT", "/v1/agent/service/register", put_register},
        {"PUT", "/v1/agent/service/deregister/{id}", put_deregister},
        {"GET", "/v1/agent/services", get_services},
        {"GET", "/v1/agent/service/{id}", get_service},
        {"GET", "/v1/agent/checks", get_checks},
        {"PUT", "/v1/agent/check/pass/{id}", put_pass},
        {"PUT", "/v1/agent/check/warn/{id}", put_warn},
        {"PUT", "/v1/agent/check/fail/{id}", put_fail},
        {"PUT", "/v1/agent/check/update/{id}", put_update},
        {"PUT", "/v1/agent/check/register", put_check_register},
        {"PUT", "/v1/agent/check/deregister/{id}", put_check_deregister},
        {"GET", "/v1/agent/self", get_self},
    };
    enum ward_err err = WARD_ERR_OK;
    for (size_t i = 0; err == WARD_ERR_OK && i < sizeof routes / sizeof routes[0]; i++)
        err = reg_route(srv, routes[i].method, routes[i].pattern, routes[i].fn, ctx);
    return err;
}
