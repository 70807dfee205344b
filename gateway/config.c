/* config.c — loads ward-gateway's YAML configuration (libyaml's node API, for the line of
 * every value), applies defaults{} to each route, and holds the built-in routes. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include <ward/config.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

/* Longest error context ("routes[12].fallback.status") we build. */
#define WHERE_MAX 96

/* The value kinds a key can have; each has one parser below. */
enum kind {
    K_PREFIX,     /* char *: a path prefix */
    K_SERVICE,    /* char *: a service name */
    K_REWRITE,    /* char *: "" or a path prefix */
    K_JSON,       /* char *: a JSON text, or null for none */
    K_DURATION,   /* int64_t ns, >= min */
    K_SIZE,       /* int64_t bytes, > 0 */
    K_U32,        /* uint32_t in min..max */
    K_I64,        /* int64_t in min..max */
    K_STATUS,     /* int, 100..599 */
    K_PERCENT,    /* double, 0..100 */
    K_RATE,       /* double, 0..1e9 */
    K_MULTIPLIER, /* double, 1..1000 */
    K_BOOL,       /* bool */
    K_JITTER,     /* enum ward_retry_jitter */
    K_MAP         /* a nested mapping described by sub */
};

struct loader;
struct fields;

struct field {
    const char *name;
    enum kind kind;
    size_t off;               /* of the destination in the struct being filled */
    int64_t min, max;         /* K_DURATION (min), K_U32, K_I64 */
    const struct fields *sub; /* K_MAP */
    bool route_only;          /* not allowed in defaults{} */
};

/* A mapping's keys, and an optional check of the filled struct once all keys are read
 * (defaults already merged in), blaming the mapping's node. */
struct fields {
    const struct field *v;
    size_t n;
    enum ward_err (*check)(struct loader *ld, const yaml_node_t *map, const char *where,
                           void *dst);
};

/* What a load carries around: where to report, and the document. */
struct loader {
    const char *file;
    char *err;
    size_t errlen;
    yaml_document_t doc;
    bool in_defaults; /* parsing defaults{}: route-only keys are unknown */
};

static int line_of(const yaml_node_t *n)
{
    return n == NULL ? 1 : (int)n->start_mark.line + 1;
}

/* Writes "FILE:LINE: message" for node n to the caller's buffer; returns SYNTAX. */
__attribute__((format(printf, 3, 4))) static enum ward_err
fail(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int used;

    if (ld->errlen == 0)
        return WARD_ERR_SYNTAX;
    used = snprintf(ld->err, ld->errlen, "%s:%d: ", ld->file, line_of(n));
    if (used >= 0 && (size_t)used < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + used, ld->errlen - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return WARD_ERR_SYNTAX;
}

static enum ward_err nomem(struct loader *ld)
{
    if (ld->errlen > 0)
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
    return WARD_ERR_NOMEM;
}

static const char *type_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *text_of(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain scalar that YAML reads as null: empty, "~" or "null". */
static bool is_null(const yaml_node_t *n)
{
    const char *s = text_of(n);
    return n->type == YAML_SCALAR_NODE && is_plain(n) &&
           (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
            strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* Requires n to be a scalar holding no NUL byte; names what it is otherwise. */
static enum ward_err want_scalar(struct loader *ld, const yaml_node_t *n, const char *where,
                                 const char *what)
{
    if (n->type != YAML_SCALAR_NODE)
        return fail(ld, n, "%s: expected %s, got %s", where, what, type_name(n));
    if (strlen(text_of(n)) != n->data.scalar.length)
        return fail(ld, n, "%s: contains a NUL character", where);
    return WARD_ERR_OK;
}

/* Requires a plain (unquoted) scalar: numbers and booleans are not strings. */
static enum ward_err want_plain(struct loader *ld, const yaml_node_t *n, const char *where,
                                const char *what)
{
    enum ward_err rc = want_scalar(ld, n, where, what);
    if (rc == WARD_ERR_OK && !is_plain(n))
        rc = fail(ld, n, "%s: expected %s, got the quoted string \"%s\"", where, what,
                  text_of(n));
    return rc;
}

/* An optional '-' and at most 18 digits, into *v (the sign only so that range errors
 * can say "outside"). */
static bool parse_whole(const char *s, int64_t *v)
{
    bool neg = s[0] == '-';
    int64_t x = 0;
    size_t i = 0;

    if (neg)
        s++;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        if (i >= 18)
            return false;
        x = x * 10 + (s[i] - '0');
    }
    if (i == 0 || s[i] != '\0')
        return false;
    *v = neg ? -x : x;
    return true;
}

/* Digits with an optional fraction ("2", "0.5") and an optional '-' (so that range
 * errors can say "outside"): no exponent, hex, inf or nan. */
static bool parse_decimal(const char *s, double *v)
{
    size_t i = s[0] == '-';
    size_t digits = 0;

    for (; s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (s[i] == '.') {
        i++;
        for (; s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    }
    if (digits == 0 || s[i] != '\0' || i > 32)
        return false;
    *v = strtod(s, NULL);
    return isfinite(*v);
}

/* A path prefix: starts with '/', more than "/", no trailing '/', no empty segment, and
 * none of '?', '#', blanks or control characters. */
static enum ward_err check_path(struct loader *ld, const yaml_node_t *n, const char *where,
                                const char *s)
{
    if (s[0] != '/')
        return fail(ld, n, "%s: \"%s\" must start with '/'", where, s);
    if (s[strlen(s) - 1] == '/')
        return fail(ld, n, "%s: \"%s\" must not end with '/'", where, s);
    if (strstr(s, "//") != NULL)
        return fail(ld, n, "%s: \"%s\" has an empty segment", where, s);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '?' || *p == '#' || (unsigned char)*p <= ' ' || *p == 0x7f)
            return fail(ld, n, "%s: \"%s\" may not contain '?', '#', blanks or controls",
                        where, s);
    }
    return WARD_ERR_OK;
}

/* Replaces the owned string at *slot with a copy of s (NULL allowed). */
static enum ward_err set_string(struct loader *ld, char **slot, const char *s)
{
    char *copy = NULL;

    if (s != NULL) {
        copy = strdup(s);
        if (copy == NULL)
            return nomem(ld);
    }
    free(*slot);
    *slot = copy;
    return WARD_ERR_OK;
}

static enum ward_err parse_map(struct loader *ld, const yaml_node_t *map, const char *where,
                               const struct fields *spec, void *dst);

/* Parses value node n of key f into dst + f->off. */
static enum ward_err parse_value(struct loader *ld, const struct field *f, const yaml_node_t *n,
                                 const char *where, void *dst)
{
    void *slot = (char *)dst + f->off;
    enum ward_err rc = WARD_ERR_OK;
    const char *s;
    int64_t i64 = 0;
    double d = 0;

    if (f->kind == K_MAP) {
        if (n->type != YAML_MAPPING_NODE)
            return fail(ld, n, "%s: expected a mapping, got %s", where, type_name(n));
        return parse_map(ld, n, where, f->sub, dst);
    }
    if (f->kind == K_JSON && is_null(n))
        return set_string(ld, slot, NULL);

    switch (f->kind) {
    case K_PREFIX:
    case K_REWRITE:
    case K_SERVICE:
    case K_JSON:
    case K_DURATION:
    case K_SIZE:
    case K_JITTER:
        rc = want_scalar(ld, n, where, "a string");
        if (rc == WARD_ERR_OK && is_null(n))
            rc = fail(ld, n, "%s: has no value", where);
        break;
    default:
        rc = want_plain(ld, n, where, f->kind == K_BOOL ? "true or false" : "a number");
        break;
    }
    if (rc != WARD_ERR_OK)
        return rc;
    s = text_of(n);

    switch (f->kind) {
    case K_PREFIX:
        rc = check_path(ld, n, where, s);
        if (rc == WARD_ERR_OK)
            rc = set_string(ld, slot, s);
        break;
    case K_REWRITE:
        if (s[0] != '\0')
            rc = check_path(ld, n, where, s);
        if (rc == WARD_ERR_OK)
            rc = set_string(ld, slot, s);
        break;
    case K_SERVICE:
        for (const char *p = s; *p != '\0' && rc == WARD_ERR_OK; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                rc = fail(ld, n, "%s: \"%s\" is not a service name (letters, digits, '-', "
                                 "'_', '.')", where, s);
        }
        if (rc == WARD_ERR_OK)
            rc = set_string(ld, slot, s);
        break;
    case K_JSON: {
        json_error_t jerr;
        json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            /* A literal block (|) keeps its lines: blame the one jansson names. */
            yaml_node_t at = {.start_mark = n->start_mark};
            if (n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE && jerr.line > 0)
                at.start_mark.line += (size_t)jerr.line;
            rc = fail(ld, &at, "%s: not valid JSON: %s (line %d, column %d of the body)", where,
                      jerr.text, jerr.line, jerr.column);
            break;
        }
        json_decref(j);
        rc = set_string(ld, slot, s);
        break;
    }
    case K_DURATION:
        if (ward_duration_parse(s, &i64) != WARD_ERR_OK)
            rc = fail(ld, n, "%s: \"%s\" is not a duration (a number and a unit: ns, us, ms, "
                             "s, m or h, as in 250ms, 5s, 1m)", where, s);
        else if (i64 < f->min)
            rc = fail(ld, n, "%s: must be more than 0", where);
        else
            *(int64_t *)slot = i64;
        break;
    case K_SIZE:
        if (ward_size_parse(s, &i64) != WARD_ERR_OK)
            rc = fail(ld, n, "%s: \"%s\" is not a size (bytes, or a number with k, m or g "
                             "for KiB, MiB, GiB)", where, s);
        else if (i64 <= 0)
            rc = fail(ld, n, "%s: must be more than 0", where);
        else
            *(int64_t *)slot = i64;
        break;
    case K_U32:
    case K_I64:
        if (!parse_whole(s, &i64))
            rc = fail(ld, n, "%s: \"%s\" is not a whole number", where, s);
        else if (i64 < f->min || i64 > f->max)
            rc = fail(ld, n, "%s: %s is outside %lld..%lld", where, s, (long long)f->min,
                      (long long)f->max);
        else if (f->kind == K_U32)
            *(uint32_t *)slot = (uint32_t)i64;
        else
            *(int64_t *)slot = i64;
        break;
    case K_STATUS:
        if (!parse_whole(s, &i64))
            rc = fail(ld, n, "%s: \"%s\" is not a whole number", where, s);
        else if (i64 < 100 || i64 > 599)
            rc = fail(ld, n, "%s: %s is not an HTTP status (100..599)", where, s);
        else
            *(int *)slot = (int)i64;
        break;
    case K_PERCENT:
        if (!parse_decimal(s, &d))
            rc = fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 0 || d > 100)
            rc = fail(ld, n, "%s: %s is outside 0..100", where, s);
        else
            *(double *)slot = d;
        break;
    case K_RATE:
        if (!parse_decimal(s, &d))
            rc = fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 0 || d > 1e9)
            rc = fail(ld, n, "%s: %s is outside 0..1000000000", where, s);
        else
            *(double *)slot = d;
        break;
    case K_MULTIPLIER:
        if (!parse_decimal(s, &d))
            rc = fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 1 || d > 1000)
            rc = fail(ld, n, "%s: %s is outside 1..1000", where, s);
        else
            *(double *)slot = d;
        break;
    case K_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
            *(bool *)slot = true;
        else if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
                 strcmp(s, "FALSE") == 0)
            *(bool *)slot = false;
        else
            rc = fail(ld, n, "%s: expected true or false, got \"%s\"", where, s);
        break;
    case K_JITTER: {
        static const char *const names[] = {
            [WARD_RETRY_JITTER_FULL] = "full",
            [WARD_RETRY_JITTER_EQUAL] = "equal",
            [WARD_RETRY_JITTER_DECORRELATED] = "decorrelated",
            [WARD_RETRY_JITTER_NONE] = "none",
        };
        size_t k = 0;
        while (k < sizeof names / sizeof names[0] && strcmp(s, names[k]) != 0)
            k++;
        if (k == sizeof names / sizeof names[0])
            rc = fail(ld, n, "%s: \"%s\" is not a jitter (full, equal, decorrelated, none)",
                      where, s);
        else
            *(enum ward_retry_jitter *)slot = (enum ward_retry_jitter)k;
        break;
    }
    case K_MAP:
        break;
    }
    return rc;
}

/* "unknown key" with the list of the keys allowed here. */
static enum ward_err unknown_key(struct loader *ld, const yaml_node_t *key, const char *where,
                                 const struct fields *spec)
{
    char allowed[512] = "";
    size_t used = 0;

    for (size_t i = 0; i < spec->n; i++) {
        int w;
        if (spec->v[i].route_only && ld->in_defaults)
            continue;
        w = snprintf(allowed + used, sizeof allowed - used, "%s%s", used > 0 ? ", " : "",
                     spec->v[i].name);
        if (w < 0 || (size_t)w >= sizeof allowed - used)
            break;
        used += (size_t)w;
    }
    return fail(ld, key, "%s: unknown key \"%s\"; allowed: %s", where[0] ? where : "top level",
                text_of(key), allowed);
}

/* Checks the key of pair p in map: a scalar, not repeated earlier in the mapping. */
static enum ward_err check_key(struct loader *ld, const yaml_node_t *map,
                               const yaml_node_pair_t *p, const char *where)
{
    const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);

    if (key->type != YAML_SCALAR_NODE)
        return fail(ld, key, "%s: a key must be a string, not %s", where[0] ? where : "top level",
                    type_name(key));
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        const yaml_node_t *prev = yaml_document_get_node(&ld->doc, q->key);
        if (prev->type == YAML_SCALAR_NODE && strcmp(text_of(prev), text_of(key)) == 0)
            return fail(ld, key, "%s: duplicate key \"%s\" (first on line %d)",
                        where[0] ? where : "top level", text_of(key), line_of(prev));
    }
    return WARD_ERR_OK;
}

/* Walks a mapping: every key must be a known, non-repeated scalar. Fills dst. */
static enum ward_err parse_map(struct loader *ld, const yaml_node_t *map, const char *where,
                               const struct fields *spec, void *dst)
{
    enum ward_err rc = WARD_ERR_OK;

    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top && rc == WARD_ERR_OK; p++) {
        const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(&ld->doc, p->value);
        const struct field *f = NULL;
        char sub[WHERE_MAX];

        rc = check_key(ld, map, p, where);
        if (rc != WARD_ERR_OK)
            break;
        for (size_t i = 0; i < spec->n; i++) {
            if (strcmp(spec->v[i].name, text_of(key)) == 0 &&
                !(spec->v[i].route_only && ld->in_defaults))
                f = &spec->v[i];
        }
        if (f == NULL) {
            rc = unknown_key(ld, key, where, spec);
            break;
        }
        snprintf(sub, sizeof sub, "%s%s%s", where, where[0] ? "." : "", f->name);
        rc = parse_value(ld, f, val, sub, dst);
    }
    if (rc == WARD_ERR_OK && spec->check != NULL)
        rc = spec->check(ld, map, where, dst);
    return rc;
}

static enum ward_err check_retry(struct loader *ld, const yaml_node_t *map, const char *where,
                                 void *dst)
{
    const struct gw_route *r = dst;
    if (r->retry.cap_ns < r->retry.base_ns)
        return fail(ld, map, "%s: cap must not be shorter than base", where);
    if (ward_retry_policy_check(&r->retry) != WARD_ERR_OK)
        return fail(ld, map, "%s: not a usable retry policy", where);
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
        return nomem(ld);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &ld->doc)) {
        if (parser.error == YAML_MEMORY_ERROR) {
            rc = nomem(ld);
        } else {
            yaml_node_t at = {.start_mark = parser.problem_mark};
            rc = fail(ld, &at, "YAML syntax: %s%s%s", parser.problem ? parser.problem : "error",
                      parser.context ? " " : "", parser.context ? parser.context : "");
        }
        goto out;
    }
    *have_doc = true;
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_node_t at = {.start_mark = parser.problem_mark};
        rc = fail(ld, &at, "YAML syntax: %s", parser.problem ? parser.problem : "error");
        goto out;
    }
    if (yaml_document_get_root_node(&extra) != NULL) {
        yaml_node_t at = {.start_mark = extra.start_mark};
        rc = fail(ld, &at, "a second YAML document; the configuration is one document");
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
        if (key->type == YAML_SCALAR_NODE && strcmp(text_of(key), name) == 0)
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
                return fail(ld, &at, "routes[%zu].prefix: \"%s\" is already the prefix of "
                                     "routes[%zu] (line %d)", i, r->prefix, j, q->line);
            if (strcmp(r->service, q->service) == 0 &&
                (r->breaker.failures != q->breaker.failures ||
                 r->breaker.open_timeout_ns != q->breaker.open_timeout_ns ||
                 r->breaker.half_open_requests != q->breaker.half_open_requests))
                return fail(ld, &rat, "routes[%zu].breaker: differs from routes[%zu] (line %d), "
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
        return fail(ld, seq, "routes: expected a sequence, got %s", type_name(seq));
    start = seq->data.sequence.items.start;
    n = (size_t)(seq->data.sequence.items.top - start);
    if (n == 0)
        return fail(ld, seq, "routes: is empty; a gateway needs at least one route");
    cfg->routes = calloc(n, sizeof *cfg->routes);
    lines = calloc(n, sizeof *lines);
    if (cfg->routes == NULL || lines == NULL) {
        rc = nomem(ld);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *item = yaml_document_get_node(&ld->doc, start[i]);
        const yaml_node_t *pv;
        struct gw_route *r = &cfg->routes[i];
        char where[WHERE_MAX];

        snprintf(where, sizeof where, "routes[%zu]", i);
        if (item->type != YAML_MAPPING_NODE) {
            rc = fail(ld, item, "%s: expected a mapping, got %s", where, type_name(item));
            goto out;
        }
        *r = *tmpl;
        r->fallback.body = NULL;
        cfg->nroutes++;
        r->line = line_of(item);
        rc = set_string(ld, &r->fallback.body, tmpl->fallback.body);
        if (rc == WARD_ERR_OK)
            rc = parse_map(ld, item, where, &route_spec, r);
        if (rc != WARD_ERR_OK)
            goto out;
        if (r->prefix == NULL) {
            rc = fail(ld, item, "%s: missing prefix", where);
            goto out;
        }
        if (r->service == NULL) {
            rc = fail(ld, item, "%s: missing service", where);
            goto out;
        }
        pv = top_get(ld, item, "prefix");
        lines[i] = line_of(pv);
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
    if (root == NULL || is_null(root))
        return fail(ld, root, "the file is empty: routes are missing");
    if (root->type != YAML_MAPPING_NODE)
        return fail(ld, root, "the top level must be a mapping, not %s", type_name(root));
    /* Checks every top-level key (known, once) and reads the sizes; defaults and routes
     * are read below, defaults first. */
    for (const yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(&ld->doc, p->value);
        const struct field *f = NULL;
        rc = check_key(ld, root, p, "");
        if (rc != WARD_ERR_OK)
            return rc;
        for (size_t i = 0; i < top_spec.n; i++) {
            if (strcmp(top_spec.v[i].name, text_of(key)) == 0)
                f = &top_spec.v[i];
        }
        if (f == NULL)
            return unknown_key(ld, key, "", &top_spec);
        if (f->kind == K_SIZE) {
            rc = parse_value(ld, f, val, f->name, cfg);
            if (rc != WARD_ERR_OK)
                return rc;
        }
    }
    defaults = top_get(ld, root, "defaults");
    routes = top_get(ld, root, "routes");
    if (routes == NULL)
        return fail(ld, root, "routes: missing; a file states every route (without --config "
                              "the built-in routes apply)");
    if (defaults != NULL) {
        if (defaults->type != YAML_MAPPING_NODE)
            return fail(ld, defaults, "defaults: expected a mapping, got %s",
                        type_name(defaults));
        ld->in_defaults = true;
        rc = parse_map(ld, defaults, "defaults", &route_spec, &tmpl);
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
        rc = nomem(&ld);
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
