/* yaml_load.h — a table-driven YAML loader for ward-gateway's configuration: each
 * mapping is described by its keys (name, kind, where the value goes), every value is
 * parsed and range-checked by its kind, and every error names FILE:LINE (libyaml's node
 * API keeps each value's line). config.c holds the tables; this holds the walk. */
#ifndef GW_YAML_LOAD_H
#define GW_YAML_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yaml.h>

#include <ward/err.h>

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


/* The line of n (from 1; 1 for NULL). */
int gw_yaml_line(const yaml_node_t *n);
/* Writes "FILE:LINE: message" for node n into the load's error buffer; returns SYNTAX. */
__attribute__((format(printf, 3, 4))) enum ward_err gw_yaml_fail(struct loader *ld,
                                                                  const yaml_node_t *n,
                                                                  const char *fmt, ...);
/* "FILE: out of memory"; returns NOMEM. */
enum ward_err gw_yaml_nomem(struct loader *ld);
/* "a mapping", "a list", "a string"...: for messages. */
const char *gw_yaml_type_name(const yaml_node_t *n);
/* A scalar's text (NUL-terminated). */
const char *gw_yaml_text(const yaml_node_t *n);
/* Whether n is YAML's null (~, null, or empty). */
bool gw_yaml_is_null(const yaml_node_t *n);
/* Replaces *slot with a copy of s (NULL allowed); NOMEM reported. */
enum ward_err gw_yaml_set_string(struct loader *ld, char **slot, const char *s);
/* One value of field f from node n into dst (where: its path, for messages). */
enum ward_err gw_yaml_parse_value(struct loader *ld, const struct field *f, const yaml_node_t *n,
                                  const char *where, void *dst);
/* Walks a mapping: every key must be a known, non-repeated scalar; fills dst; then the
 * spec's check. */
enum ward_err gw_yaml_parse_map(struct loader *ld, const yaml_node_t *map, const char *where,
                                const struct fields *spec, void *dst);
/* "unknown key" with the list of the keys allowed here. */
enum ward_err gw_yaml_unknown_key(struct loader *ld, const yaml_node_t *key, const char *where,
                                  const struct fields *spec);
/* Checks the key of pair p in map: a scalar, not repeated earlier in the mapping. */
enum ward_err gw_yaml_check_key(struct loader *ld, const yaml_node_t *map,
                                const yaml_node_pair_t *p, const char *where);

#endif
