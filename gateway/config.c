/* config.c — ward-gateway's configuration: the schema of its YAML file (the tables
 * yaml_load.c walks), defaults{} applied to each route, the checks across routes, and the
 * built-in routes. */
#include "config.h"
#include "yaml_load.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>


/* ---- the schema: what each mapping may hold ---- */

static enum ward_err check_retry(struct loader *ld, const yaml_node_t *map, const char *where,
                                 void *dst)
{
    const struct gw_route *r = dst;
    if (r->retry.cap_ns < r->retry.base_ns)
        return gw_yaml_fail(ld, map, "%s: cap must not be shorter than base", where);
    if (ward_retry_policy_check(&r->retry) != WARD_ERR_OK)
        return gw_yaml_fail(ld, map, "%s: not a usable retry policy", where);
    return WARD_ERR_OK;
}

#define RF(name, kind, member, ...)                                                       \
    {                                                                                     \
        name, kind, offsetof(struct gw_route, member), __VA_ARGS__                        \
    }

static const struct field retry_fields[] = {
    RF("attempts", K_U32, retry.max_attempts, 1, 100, NULL, false),
    RF("base", K_DURATION, retry.base_ns, 1, 0, NULL, false),
    RF("cap", K_DURATION, retry.cap_ns, 1, 0, NULL, false),
    RF("multiplier", K_MULTIPLIER, retry.multiplier, 0, 0, NULL, false),
    RF("jitter", K_JITTER, retry.jitter, 0, 0, NULL, false),
    RF("max_retry_after", K_DURATION, retry.max_retry_after_ns, 0, 0, NULL, false),
};
static const struct fields retry_spec = {retry_fields, 6, check_retry};

static const struct field limit_fields[] = {
    RF("rate", K_RATE, limit.rate, 0, 0, NULL, false),
    RF("burst", K_I64, limit.burst, 1, INT64_C(1) << 53, NULL, false),
};
static const struct fields limit_spec = {limit_fields, 2, NULL};

static const struct field breaker_fields[] = {
    RF("failures", K_U32, breaker.failures, 1, 1000000, NULL, false),
    RF("open_timeout", K_DURATION, breaker.open_timeout_ns, 1, 0, NULL, false),
    RF("half_open_requests", K_U32, breaker.half_open_requests, 1, 1000000, NULL, false),
};
static const struct fields breaker_spec = {breaker_fields, 3, NULL};

static const struct field fallback_fields[] = {
    RF("status", K_STATUS, fallback.status, 0, 0, NULL, false),
    RF("body", K_JSON, fallback.body, 0, 0, NULL, false),
};
static const struct fields fallback_spec = {fallback_fields, 2, NULL};

static const struct field fault_fields[] = {
    RF("abort_percent", K_PERCENT, fault.abort_percent, 0, 0, NULL, false),
    RF("abort_status", K_STATUS, fault.abort_status, 0, 0, NULL, false),
    RF("delay_percent", K_PERCENT, fault.delay_percent, 0, 0, NULL, false),
    RF("delay", K_DURATION, fault.delay_ns, 0, 0, NULL, false),
};
static const struct fields fault_spec = {fault_fields, 4, NULL};

/* A route's keys; defaults{} takes the same minus the route-only ones. */
static const struct field route_fields[] = {
    RF("prefix", K_PREFIX, prefix, 0, 0, NULL, true),
    RF("service", K_SERVICE, service, 0, 0, NULL, true),
    RF("rewrite", K_REWRITE, rewrite, 0, 0, NULL, true),
    RF("timeout", K_DURATION, timeout_ns, 1, 0, NULL, false),
    RF("retry", K_MAP, retry, 0, 0, &retry_spec, false),
    RF("rate_limit", K_MAP, limit, 0, 0, &limit_spec, false),
    RF("breaker", K_MAP, breaker, 0, 0, &breaker_spec, false),
    RF("fallback", K_MAP, fallback, 0, 0, &fallback_spec, false),
    RF("auth", K_BOOL, auth, 0, 0, NULL, false),
    RF("fault", K_MAP, fault, 0, 0, &fault_spec, false),
};
static const struct fields route_spec = {route_fields, 10, NULL};

#undef RF

/* The top level: the sizes go through the table; defaults and routes (listed for the
 * key check) are read in that order whatever their order in the file, so that defaults
 * apply to every route. */
static const struct field top_fields[] = {
    {"body_limit", K_SIZE, offsetof(struct gw_config, body_limit), 0, 0, NULL, false},
    {"response_limit", K_SIZE, offsetof(struct gw_config, response_limit), 0, 0, NULL, false},
    {"defaults", K_MAP, 0, 0, 0, NULL, false},
    {"routes", K_MAP, 0, 0, 0, NULL, false},
};
static const struct fields top_spec = {top_fields, 4, NULL};

/* Every route field at its built-in default; the route-only strings NULL. */
static void route_builtin(struct gw_route *r)
{
    memset(r, 0, sizeof *r);
    r->timeout_ns = 5 * NS_PER_S;
    ward_retry_policy_default(&r->retry);
    r->retry.max_attempts = 2;
    r->retry.base_ns = 50 * NS_PER_MS;
    r->breaker.failures = 5;
    r->breaker.open_timeout_ns = 30 * NS_PER_S;
    r->breaker.half_open_requests = 1;
    r->fallback.status = 503;
    r->fault.abort_status = 503;
}

static void route_fini(struct gw_route *r)
{
    free(r->prefix);
    free(r->service);
    free(r->rewrite);
    free(r->fallback.body);
}

/* A burst not given follows the rate: ceil(rate), at least 1. */
static void route_finish(struct gw_route *r)
{
    if (r->limit.rate > 0 && r->limit.burst == 0) {
        double b = ceil(r->limit.rate);
        r->limit.burst = b < 1 ? 1 : (int64_t)b;
    }
}

static size_t grow_of(const struct gw_route *r)
{
    size_t p = strlen(r->prefix);
    size_t w = r->rewrite == NULL ? p : strlen(r->rewrite);
    return w > p ? w - p : 0;
}

void gw_config_free(struct gw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->nroutes; i++)
        route_fini(&cfg->routes[i]);
    free(cfg->routes);
    free(cfg->path);
    free(cfg);
}

static struct gw_config *config_new(void)
{
    struct gw_config *cfg = calloc(1, sizeof *cfg);
    if (cfg != NULL) {
        cfg->body_limit = INT64_C(1) << 20;
        cfg->response_limit = INT64_C(8) << 20;
    }
    return cfg;
}

enum ward_err gw_config_defaults(struct gw_config **out)
{
    static const struct {
        const char *prefix, *service, *rewrite;
    } builtin[] = {
        {"/api/zakat", "zakat-service", ""},
        {"/api/payments", "payment-service", "/payments"},
        {"/api/invoices", "invoice-service", "/invoices"},
        {"/api/accounts", "accounting-service", "/accounts"},
        {"/api/transactions", "accounting-service", "/transactions"},
    };
    enum ward_err rc = WARD_ERR_NOMEM;
    struct gw_config *cfg = NULL;
    size_t n = sizeof builtin / sizeof builtin[0];

    if (out == NULL)
        return WARD_ERR_INVAL;
    *out = NULL;
    cfg = config_new();
    if (cfg == NULL)
        goto fail;
    cfg->routes = calloc(n, sizeof *cfg->routes);
    if (cfg->routes == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        struct gw_route *r = &cfg->routes[i];
        route_builtin(r);
        cfg->nroutes++;
        r->prefix = strdup(builtin[i].prefix);
        r->service = strdup(builtin[i].service);
        r->rewrite = strdup(builtin[i].rewrite);
        if (r->prefix == NULL || r->service == NULL || r->rewrite == NULL)
            goto fail;
        if (grow_of(r) > cfg->rewrite_grow)
            cfg->rewrite_grow = grow_of(r);
    }
    *out = cfg;
    cfg = NULL;
    rc = WARD_ERR_OK;
fail:
    gw_config_free(cfg);
    return rc;
}

/* Reads the first document of the file into ld->doc, reporting YAML syntax errors with
 * their line. A second document is an error: it would be silently ignored otherwise. */
static enum ward_err read_document(struct loader *ld, FILE *f, bool *have_doc)
{
    yaml_parser_t parser;
    yaml_document_t extra;
    enum ward_err rc = WARD_ERR_OK;

    if (!yaml_parser_initialize(&parser))
        return gw_yaml_nomem(ld);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &ld->doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            rc = gw_yaml_nomem(ld);
        } else {
            yaml_node_t at = {.start_mark = parser.problem_mark};
            rc = gw_yaml_fail(ld, &at, "YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
                      parser.context ? " " : "", parser.context ? parser.context : "");
        }
        goto out;
    }
    *have_doc = true;
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_node_t at = {.start_mark = parser.problem_mark};
        rc = gw_yaml_fail(ld, &at, "YAML syntax: %s", parser.problem ? parser.problem : "error");
        goto out;
    }
    if (yaml_document_get_root_node(&extra) != NULL) {
        yaml_node_t at = {.start_mark = extra.start_mark};
        rc = gw_yaml_fail(ld, &at, "a second YAML document; the configuration is one document");
    }
    yaml_document_delete(&extra);
out:
    yaml_parser_delete(&parser);
    return rc;
}

/* Finds the value of key name in the top-level mapping, or NULL. */
static const yaml_node_t *top_get(struct loader *ld, const yaml_node_t *root, const char *name)
{
    for (const yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);
        if (key->type == YAML_SCALAR_NODE && strcmp(gw_yaml_text(key), name) == 0)
            return yaml_document_get_node(&ld->doc, p->value);
    }
    return NULL;
}

/* Checks what only the whole route list can show: duplicate prefixes, and routes to one
 * service that disagree on its breaker. lines[i] is the line of route i's prefix. */
static enum ward_err check_routes(struct loader *ld, const struct gw_config *cfg,
                                  const int *lines)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct gw_route *r = &cfg->routes[i];
        for (size_t j = 0; j < i; j++) {
            const struct gw_route *q = &cfg->routes[j];
            yaml_node_t at = {.start_mark.line = (size_t)lines[i] - 1};
            yaml_node_t rat = {.start_mark.line = (size_t)r->line - 1};
            if (strcmp(r->prefix, q->prefix) == 0)
                return gw_yaml_fail(ld, &at, "routes[%zu].prefix: \"%s\" is already the prefix of "
                                     "routes[%zu] (line %d)", i, r->prefix, j, q->line);
            if (strcmp(r->service, q->service) == 0 &&
                (r->breaker.failures != q->breaker.failures ||
                 r->breaker.open_timeout_ns != q->breaker.open_timeout_ns ||
                 r->breaker.half_open_requests != q->breaker.half_open_requests))
                return gw_yaml_fail(ld, &rat, "routes[%zu].breaker: differs from routes[%zu] (line %d), "
                                      "which goes to the same service %s; a service has one "
                                      "breaker", i, j, q->line, r->service);
        }
    }
    return WARD_ERR_OK;
}

/* Parses the sequence of routes, each starting as a copy of tmpl. */
static enum ward_err parse_routes(struct loader *ld, const yaml_node_t *seq,
                                  const struct gw_route *tmpl, struct gw_config *cfg)
{
    const yaml_node_item_t *start;
    size_t n;
    int *lines = NULL;
    enum ward_err rc = WARD_ERR_OK;

    if (seq->type != YAML_SEQUENCE_NODE)
        return gw_yaml_fail(ld, seq, "routes: expected a sequence, got %s", gw_yaml_type_name(seq));
    start = seq->data.sequence.items.start;
    n = (size_t)(seq->data.sequence.items.top - start);
    if (n == 0)
        return gw_yaml_fail(ld, seq, "routes: is empty; a gateway needs at least one route");
    cfg->routes = calloc(n, sizeof *cfg->routes);
    lines = calloc(n, sizeof *lines);
    if (cfg->routes == NULL || lines == NULL) {
        rc = gw_yaml_nomem(ld);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(&ld->doc, start[i]);
        const yaml_node_t *pv;
        struct gw_route *r = &cfg->routes[i];
        char where[WHERE_MAX];

        snprintf(where, sizeof where, "routes[%zu]", i);
        if (item->type != YAML_MAPPING_NODE) {
            rc = gw_yaml_fail(ld, item, "%s: expected a mapping, got %s", where, gw_yaml_type_name(item));
            goto out;
        }
        *r = *tmpl;
        r->fallback.body = NULL;
        cfg->nroutes++;
        r->line = gw_yaml_line(item);
        rc = gw_yaml_set_string(ld, &r->fallback.body, tmpl->fallback.body);
        if (rc == WARD_ERR_OK)
            rc = gw_yaml_parse_map(ld, item, where, &route_spec, r);
        if (rc != WARD_ERR_OK)
            goto out;
        if (r->prefix == NULL) {
            rc = gw_yaml_fail(ld, item, "%s: missing prefix", where);
            goto out;
        }
        if (r->service == NULL) {
            rc = gw_yaml_fail(ld, item, "%s: missing service", where);
            goto out;
        }
        pv = top_get(ld, item, "prefix");
        lines[i] = gw_yaml_line(pv);
        route_finish(r);
        if (grow_of(r) > cfg->rewrite_grow)
            cfg->rewrite_grow = grow_of(r);
    }
    rc = check_routes(ld, cfg, lines);
out:
    free(lines);
    return rc;
}

/* Parses the loaded document into cfg. */
static enum ward_err parse_document(struct loader *ld, struct gw_config *cfg)
{
    const yaml_node_t *root = yaml_document_get_root_node(&ld->doc);
    const yaml_node_t *defaults;
    const yaml_node_t *routes;
    struct gw_route tmpl;
    enum ward_err rc;

    route_builtin(&tmpl);
    if (root == NULL || gw_yaml_is_null(root))
        return gw_yaml_fail(ld, root, "the file is empty: routes are missing");
    if (root->type != YAML_MAPPING_NODE)
        return gw_yaml_fail(ld, root, "the top level must be a mapping, not %s", gw_yaml_type_name(root));
    /* Checks every top-level key (known, once) and reads the sizes; defaults and routes
     * are read below, defaults first. */
    for (const yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(&ld->doc, p->value);
        const struct field *f = NULL;
        rc = gw_yaml_check_key(ld, root, p, "");
        if (rc != WARD_ERR_OK)
            return rc;
        for (size_t i = 0; i < top_spec.n; i++) {
            if (strcmp(top_spec.v[i].name, gw_yaml_text(key)) == 0)
                f = &top_spec.v[i];
        }
        if (f == NULL)
            return gw_yaml_unknown_key(ld, key, "", &top_spec);
        if (f->kind == K_SIZE) {
            rc = gw_yaml_parse_value(ld, f, val, f->name, cfg);
            if (rc != WARD_ERR_OK)
                return rc;
        }
    }
    defaults = top_get(ld, root, "defaults");
    routes = top_get(ld, root, "routes");
    if (routes == NULL)
        return gw_yaml_fail(ld, root, "routes: missing; a file states every route (without --config "
                              "the built-in routes apply)");
    if (defaults != NULL) {
        if (defaults->type != YAML_MAPPING_NODE)
            return gw_yaml_fail(ld, defaults, "defaults: expected a mapping, got %s",
                        gw_yaml_type_name(defaults));
        ld->in_defaults = true;
        rc = gw_yaml_parse_map(ld, defaults, "defaults", &route_spec, &tmpl);
        ld->in_defaults = false;
        if (rc != WARD_ERR_OK)
            goto out;
    }
    rc = parse_routes(ld, routes, &tmpl, cfg);
out:
    free(tmpl.fallback.body);
    return rc;
}

enum ward_err gw_config_load(const char *path, struct gw_config **out, char *errbuf,
                             size_t errlen)
{
    struct loader ld = {.file = path, .err = errbuf, .errlen = errlen};
    struct gw_config *cfg = NULL;
    bool have_doc = false;
    enum ward_err rc = WARD_ERR_INVAL;
    FILE *f = NULL;

    if (errlen > 0 && errbuf != NULL)
        errbuf[0] = '\0';
    else
        ld.errlen = 0;
    if (out == NULL || path == NULL)
        goto out;
    *out = NULL;
    f = fopen(path, "rb");
    if (f == NULL) {
        char buf[128];
        const char *why = strerror_r(errno, buf, sizeof buf);
        if (ld.errlen > 0)
            snprintf(errbuf, errlen, "%s: cannot read: %s", path, why);
        rc = WARD_ERR_SYSTEM;
        goto out;
    }
    cfg = config_new();
    if (cfg != NULL)
        cfg->path = strdup(path);
    if (cfg == NULL || cfg->path == NULL) {
        rc = gw_yaml_nomem(&ld);
        goto out;
    }
    rc = read_document(&ld, f, &have_doc);
    if (rc == WARD_ERR_OK && ferror(f)) {
        if (ld.errlen > 0)
            snprintf(errbuf, errlen, "%s: cannot read: I/O error", path);
        rc = WARD_ERR_SYSTEM;
    }
    if (rc == WARD_ERR_OK)
        rc = parse_document(&ld, cfg);
    if (rc == WARD_ERR_OK) {
        *out = cfg;
        cfg = NULL;
    }
out:
    if (have_doc)
        yaml_document_delete(&ld.doc);
    if (f != NULL)
        fclose(f);
    gw_config_free(cfg);
    return rc;
}

void gw_breaker_settings(const struct gw_route *r, struct ward_breaker_settings *s)
{
    ward_breaker_settings_default(s);
    s->timeout_ns = r->breaker.open_timeout_ns;
    s->max_requests = r->breaker.half_open_requests;
}
