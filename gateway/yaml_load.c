/* yaml_load.c — the walk of yaml_load.h: scalars parsed by kind (durations, sizes,
 * statuses, percents, JSON texts...), mappings checked key by key, each error with its
 * FILE:LINE. */
#include "yaml_load.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <ward/config.h>

#include "config.h"

int gw_yaml_line(const yaml_node_t *n)
{
    return n == NULL ? 1 : (int)n->start_mark.line + 1;
}

/* Writes "FILE:LINE: message" for node n to the caller's buffer; returns SYNTAX. */
__attribute__((format(printf, 3, 4))) enum ward_err gw_yaml_fail(struct loader *ld, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    int used;

    if (ld->errlen == 0)
        return WARD_ERR_SYNTAX;
    used = snprintf(ld->err, ld->errlen, "%s:%d: ", ld->file, gw_yaml_line(n));
    if (used >= 0 && (size_t)used < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + used, ld->errlen - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return WARD_ERR_SYNTAX;
}

enum ward_err gw_yaml_nomem(struct loader *ld)
{
    if (ld->errlen > 0)
        snprintf(ld->err, ld->errlen, "%s: out of memory", ld->file);
    return WARD_ERR_NOMEM;
}

const char * gw_yaml_type_name(const yaml_node_t *n)
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

const char * gw_yaml_text(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_plain(const yaml_node_t *n)
{
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* A plain scalar that YAML reads as null: empty, "~" or "null". */
bool gw_yaml_is_null(const yaml_node_t *n)
{
    const char *s = gw_yaml_text(n);
    return n->type == YAML_SCALAR_NODE && is_plain(n) &&
           (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
            strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* Requires n to be a scalar holding no NUL byte; names what it is otherwise. */
static enum ward_err want_scalar(struct loader *ld, const yaml_node_t *n, const char *where,
                                 const char *what)
{
    if (n->type != YAML_SCALAR_NODE)
        return gw_yaml_fail(ld, n, "%s: expected %s, got %s", where, what, gw_yaml_type_name(n));
    if (strlen(gw_yaml_text(n)) != n->data.scalar.length)
        return gw_yaml_fail(ld, n, "%s: contains a NUL character", where);
    return WARD_ERR_OK;
}

/* Requires a plain (unquoted) scalar: numbers and booleans are not strings. */
static enum ward_err want_plain(struct loader *ld, const yaml_node_t *n, const char *where,
                                const char *what)
{
    enum ward_err rc = want_scalar(ld, n, where, what);
    if (rc == WARD_ERR_OK && !is_plain(n))
        rc = gw_yaml_fail(ld, n, "%s: expected %s, got the quoted string \"%s\"", where, what,
                  gw_yaml_text(n));
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
        return gw_yaml_fail(ld, n, "%s: \"%s\" must start with '/'", where, s);
    if (s[strlen(s) - 1] == '/')
        return gw_yaml_fail(ld, n, "%s: \"%s\" must not end with '/'", where, s);
    if (strstr(s, "//") != NULL)
        return gw_yaml_fail(ld, n, "%s: \"%s\" has an empty segment", where, s);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '?' || *p == '#' || (unsigned char)*p <= ' ' || *p == 0x7f)
            return gw_yaml_fail(ld, n, "%s: \"%s\" may not contain '?', '#', blanks or controls",
                        where, s);
    }
    return WARD_ERR_OK;
}

/* Replaces the owned string at *slot with a copy of s (NULL allowed). */
enum ward_err gw_yaml_set_string(struct loader *ld, char **slot, const char *s)
{
    char *copy = NULL;

    if (s != NULL) {
        copy = strdup(s);
        if (copy == NULL)
            return gw_yaml_nomem(ld);
    }
    free(*slot);
    *slot = copy;
    return WARD_ERR_OK;
}


/* Parses value node n of key f into dst + f->off. */
enum ward_err gw_yaml_parse_value(struct loader *ld, const struct field *f, const yaml_node_t *n,
                                 const char *where, void *dst)
{
    void *slot = (char *)dst + f->off;
    enum ward_err rc = WARD_ERR_OK;
    const char *s;
    int64_t i64 = 0;
    double d = 0;

    if (f->kind == K_MAP) {
        if (n->type != YAML_MAPPING_NODE)
            return gw_yaml_fail(ld, n, "%s: expected a mapping, got %s", where, gw_yaml_type_name(n));
        return gw_yaml_parse_map(ld, n, where, f->sub, dst);
    }
    if (f->kind == K_JSON && gw_yaml_is_null(n))
        return gw_yaml_set_string(ld, slot, NULL);

    switch (f->kind) {
    case K_PREFIX:
    case K_REWRITE:
    case K_SERVICE:
    case K_JSON:
    case K_DURATION:
    case K_SIZE:
    case K_JITTER:
        rc = want_scalar(ld, n, where, "a string");
        if (rc == WARD_ERR_OK && gw_yaml_is_null(n))
            rc = gw_yaml_fail(ld, n, "%s: has no value", where);
        break;
    default:
        rc = want_plain(ld, n, where, f->kind == K_BOOL ? "true or false" : "a number");
        break;
    }
    if (rc != WARD_ERR_OK)
        return rc;
    s = gw_yaml_text(n);

    switch (f->kind) {
    case K_PREFIX:
        rc = check_path(ld, n, where, s);
        if (rc == WARD_ERR_OK)
            rc = gw_yaml_set_string(ld, slot, s);
        break;
    case K_REWRITE:
        if (s[0] != '\0')
            rc = check_path(ld, n, where, s);
        if (rc == WARD_ERR_OK)
            rc = gw_yaml_set_string(ld, slot, s);
        break;
    case K_SERVICE:
        for (const char *p = s; *p != '\0' && rc == WARD_ERR_OK; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
                rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a service name (letters, digits, '-', "
                                 "'_', '.')", where, s);
        }
        if (rc == WARD_ERR_OK)
            rc = gw_yaml_set_string(ld, slot, s);
        break;
    case K_JSON: {
        json_error_t jerr;
        json_t *j = json_loads(s, JSON_DECODE_ANY, &jerr);
        if (j == NULL) {
            /* A literal block (|) keeps its lines: blame the one jansson names. */
            yaml_node_t at = {.start_mark = n->start_mark};
            if (n->data.scalar.style == YAML_LITERAL_SCALAR_STYLE && jerr.line > 0)
                at.start_mark.line += (size_t)jerr.line;
            rc = gw_yaml_fail(ld, &at, "%s: not valid JSON: %s (line %d, column %d of the body)", where,
                      jerr.text, jerr.line, jerr.column);
            break;
        }
        json_decref(j);
        rc = gw_yaml_set_string(ld, slot, s);
        break;
    }
    case K_DURATION:
        if (ward_duration_parse(s, &i64) != WARD_ERR_OK)
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a duration (a number and a unit: ns, us, ms, "
                             "s, m or h, as in 250ms, 5s, 1m)", where, s);
        else if (i64 < f->min)
            rc = gw_yaml_fail(ld, n, "%s: must be more than 0", where);
        else
            *(int64_t *)slot = i64;
        break;
    case K_SIZE:
        if (ward_size_parse(s, &i64) != WARD_ERR_OK)
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a size (bytes, or a number with k, m or g "
                             "for KiB, MiB, GiB)", where, s);
        else if (i64 <= 0)
            rc = gw_yaml_fail(ld, n, "%s: must be more than 0", where);
        else
            *(int64_t *)slot = i64;
        break;
    case K_U32:
    case K_I64:
        if (!parse_whole(s, &i64))
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a whole number", where, s);
        else if (i64 < f->min || i64 > f->max)
            rc = gw_yaml_fail(ld, n, "%s: %s is outside %lld..%lld", where, s, (long long)f->min,
                      (long long)f->max);
        else if (f->kind == K_U32)
            *(uint32_t *)slot = (uint32_t)i64;
        else
            *(int64_t *)slot = i64;
        break;
    case K_STATUS:
        if (!parse_whole(s, &i64))
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a whole number", where, s);
        else if (i64 < 100 || i64 > 599)
            rc = gw_yaml_fail(ld, n, "%s: %s is not an HTTP status (100..599)", where, s);
        else
            *(int *)slot = (int)i64;
        break;
    case K_PERCENT:
        if (!parse_decimal(s, &d))
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 0 || d > 100)
            rc = gw_yaml_fail(ld, n, "%s: %s is outside 0..100", where, s);
        else
            *(double *)slot = d;
        break;
    case K_RATE:
        if (!parse_decimal(s, &d))
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 0 || d > 1e9)
            rc = gw_yaml_fail(ld, n, "%s: %s is outside 0..1000000000", where, s);
        else
            *(double *)slot = d;
        break;
    case K_MULTIPLIER:
        if (!parse_decimal(s, &d))
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a number", where, s);
        else if (d < 1 || d > 1000)
            rc = gw_yaml_fail(ld, n, "%s: %s is outside 1..1000", where, s);
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
            rc = gw_yaml_fail(ld, n, "%s: expected true or false, got \"%s\"", where, s);
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
            rc = gw_yaml_fail(ld, n, "%s: \"%s\" is not a jitter (full, equal, decorrelated, none)",
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
enum ward_err gw_yaml_unknown_key(struct loader *ld, const yaml_node_t *key, const char *where,
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
    return gw_yaml_fail(ld, key, "%s: unknown key \"%s\"; allowed: %s", where[0] ? where : "top level",
                gw_yaml_text(key), allowed);
}

/* Checks the key of pair p in map: a scalar, not repeated earlier in the mapping. */
enum ward_err gw_yaml_check_key(struct loader *ld, const yaml_node_t *map,
                               const yaml_node_pair_t *p, const char *where)
{
    const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);

    if (key->type != YAML_SCALAR_NODE)
        return gw_yaml_fail(ld, key, "%s: a key must be a string, not %s", where[0] ? where : "top level",
                    gw_yaml_type_name(key));
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        const yaml_node_t *prev = yaml_document_get_node(&ld->doc, q->key);
        if (prev->type == YAML_SCALAR_NODE && strcmp(gw_yaml_text(prev), gw_yaml_text(key)) == 0)
            return gw_yaml_fail(ld, key, "%s: duplicate key \"%s\" (first on line %d)",
                        where[0] ? where : "top level", gw_yaml_text(key), gw_yaml_line(prev));
    }
    return WARD_ERR_OK;
}

/* Walks a mapping: every key must be a known, non-repeated scalar. Fills dst. */
enum ward_err gw_yaml_parse_map(struct loader *ld, const yaml_node_t *map, const char *where,
                               const struct fields *spec, void *dst)
{
    enum ward_err rc = WARD_ERR_OK;

    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start;
         p < map->data.mapping.pairs.top && rc == WARD_ERR_OK; p++) {
        const yaml_node_t *key = yaml_document_get_node(&ld->doc, p->key);
        const yaml_node_t *val = yaml_document_get_node(&ld->doc, p->value);
        const struct field *f = NULL;
        char sub[WHERE_MAX];

        rc = gw_yaml_check_key(ld, map, p, where);
        if (rc != WARD_ERR_OK)
            break;
        for (size_t i = 0; i < spec->n; i++) {
            if (strcmp(spec->v[i].name, gw_yaml_text(key)) == 0 &&
                !(spec->v[i].route_only && ld->in_defaults))
                f = &spec->v[i];
        }
        if (f == NULL) {
            rc = gw_yaml_unknown_key(ld, key, where, spec);
            break;
        }
        snprintf(sub, sizeof sub, "%s%s%s", where, where[0] ? "." : "", f->name);
        rc = gw_yaml_parse_value(ld, f, val, sub, dst);
    }
    if (rc == WARD_ERR_OK && spec->check != NULL)
        rc = spec->check(ld, map, where, dst);
    return rc;
}
