/* registry_int.h — internals shared by the registry client's interface, its backends and
 * the anti-entropy threads. */
#ifndef WARD_REGISTRY_INT_H
#define WARD_REGISTRY_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/httpc.h>
#include <ward/registry.h>

enum ward__reg_kind { WARD__REG_NONE = 0, WARD__REG_CONSUL, WARD__REG_STATIC, WARD__REG_ETCD };

struct ward__reg_keep;
struct ward__etcd_keep;
struct ward_limiter;

/* One watched name: its cache and the thread that keeps it current. */
struct ward__reg_watch {
    struct ward__reg_watch *next;
    struct ward_registry *r;
    char *name;
    ward_registry_watch_fn fn;
    void *arg;
    struct ward_instances cache; /* guarded by r->lock */
    _Atomic uint64_t generation; /* of cache: +1 per change, written under r->lock */
    struct ward_limiter *bucket; /* consul: the loop's own token bucket, burst 2 */
    void *wake;                  /* etcd: the stream's CURLM, woken to stop; r->lock */
    pthread_t thread;
    bool started;
};

struct ward_registry {
    enum ward__reg_kind kind;
    struct ward_registry_settings s; /* url and token point into the copies below */
    char *base;                      /* consul: "http://host:port" */
    char **endpoints;                /* etcd: "http://host:port" each */
    size_t n_endpoints;
    _Atomic size_t current;          /* etcd: the endpoint that answered last */
    char *token_header;              /* "X-Consul-Token: ..." or NULL */
    struct ward_instances statics;   /* static: every entry, name set */
    struct ward_httpc *http;
    pthread_mutex_t lock;            /* guards the lists and stopping */
    pthread_cond_t cond;             /* signalled on stop (CLOCK_MONOTONIC) */
    bool stopping;
    struct ward__reg_watch *watches;
    struct ward__reg_keep *keeps;
    struct ward__etcd_keep *etcd_keeps;
};

/* consul.c: the HTTP operations. */
enum ward_err ward__consul_register(struct ward_registry *r, const struct ward_registration *reg);
enum ward_err ward__consul_deregister(struct ward_registry *r, const char *id);
enum ward_err ward__consul_known(struct ward_registry *r, const char *id);
/* One health query; index 0 = non-blocking. *index_out gets X-Consul-Index (0 read as 1). */
enum ward_err ward__consul_health(struct ward_registry *r, const char *name, uint64_t index,
                                  int64_t wait, uint64_t *index_out, struct ward_instances *out);

/* registry.c: stores got (taken over, left empty) as w's cache when it differs from it
 * (or always, when first), bumping the generation and calling w->fn with a copy. */
void ward__watch_publish(struct ward__reg_watch *w, struct ward_instances *got, bool first);

/* etcd.c: the unary operations, each failing over between the endpoints. */
enum ward_err ward__etcd_parse(struct ward_registry *r, const char *list);
enum ward_err ward__etcd_discover(struct ward_registry *r, const char *name,
                                  struct ward_instances *out);
/* POST path with body (borrowed) to the endpoints in turn from the last good one, moving
 * on after a transport error or a 502/503/504; *out the (first) JSON answer of a 200.
 * NOT_FOUND for 404, HTTP_STATUS for other statuses, TYPE for a body that is not JSON. */
enum ward_err ward__etcd_call(struct ward_registry *r, const char *path, json_t *body,
                              json_t **out);
/* An int64 field (a string, a number, or absent: 0). */
int64_t ward__etcd_int(const json_t *o, const char *field);
/* "services/<name>/" and "services/<name>/<host:port>" (malloc'ed, NULL on NOMEM). */
char *ward__etcd_prefix(const char *name);
char *ward__etcd_key(const char *name, const char *address, uint16_t port);
/* {"key":..., "range_end":...} for every key under prefix; NULL on NOMEM. */
json_t *ward__etcd_prefix_range(const char *prefix);
/* Appends the instance a KeyValue describes to into and sets *key (malloc'ed, decoded);
 * TYPE (nothing added) when it is not an endpoints-format Add. */
enum ward_err ward__etcd_kv_instance(const json_t *kv, const char *name, char **key,
                                     struct ward_instances *into);
/* The instances under name's prefix, their keys (NULL-terminated, in out's order; keys
 * may be NULL) and the store revision of the read. */
enum ward_err ward__etcd_range(struct ward_registry *r, const char *name,
                               struct ward_instances *out, char ***keys, int64_t *revision);
/* etcd_keep.c: registration under a lease, kept alive by a thread per id. */
enum ward_err ward__etcd_register(struct ward_registry *r, const struct ward_registration *reg,
                                  bool wait_first);
enum ward_err ward__etcd_deregister(struct ward_registry *r, const char *id);
void ward__etcd_keep_free_all(struct ward_registry *r);
/* etcd_watch.c: the watch thread of one name. */
void *ward__etcd_watch_main(void *arg);

/* base64.c: standard base64 with padding. encode: NUL-terminated text, NULL on NOMEM;
 * decode: the bytes plus a NUL, their count in *len, NULL when malformed or NOMEM. */
char *ward__b64_encode(const void *data, size_t n);
char *ward__b64_decode(const char *text, size_t *len);

/* static.c: parses "name=host:port,..." into r->statics; copies of name's entries. */
enum ward_err ward__static_parse(struct ward_registry *r, const char *spec);
enum ward_err ward__static_find(const struct ward_registry *r, const char *name,
                                struct ward_instances *out);

/* keep.c: a registration with its own copies of every string. */
struct ward__reg_copy {
    struct ward_registration reg;
    char **tags; /* NULL-terminated */
};
enum ward_err ward__reg_copy(struct ward__reg_copy *c, const struct ward_registration *reg);
void ward__reg_copy_free(struct ward__reg_copy *c);

/* keep.c: stops and joins the keeper of id (none: nothing); at free, all of them (after
 * r->stopping is set). */
void ward__keep_stop(struct ward_registry *r, const char *id);
void ward__keep_free_all(struct ward_registry *r);

/* registry.c: waits up to ns on r->cond, until r stops or *own (may be NULL) becomes true;
 * false when the caller should stop. */
bool ward__reg_pause(struct ward_registry *r, const bool *own, int64_t ns);

/* registry.c: whether reg can be sent (required fields, a reachable address). */
bool ward__registration_ok(const struct ward_registration *reg);

/* registry.c: list helpers. */
enum ward_err ward__instances_push(struct ward_instances *l, const char *id, const char *name,
                                   const char *address, uint16_t port);
void ward__instances_sort(struct ward_instances *l);
enum ward_err ward__instances_copy(const struct ward_instances *from, struct ward_instances *to);
bool ward__instances_equal(const struct ward_instances *a, const struct ward_instances *b);
/* host:port with port 1-65535 and a non-empty host; *host malloc'ed. */
enum ward_err ward__parse_hostport(const char *s, size_t n, char **host, uint16_t *port);

#endif
