/* registry_int.h — internals shared by the registry client's interface, its backends and
 * the anti-entropy threads. */
#ifndef WARD_REGISTRY_INT_H
#define WARD_REGISTRY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <ward/httpc.h>
#include <ward/registry.h>

enum ward__reg_kind { WARD__REG_NONE = 0, WARD__REG_CONSUL, WARD__REG_STATIC };

struct ward__reg_watch;
struct ward__reg_keep;

struct ward_registry {
    enum ward__reg_kind kind;
    struct ward_registry_settings s; /* url and token point into the copies below */
    char *base;                      /* consul: "http://host:port" */
    char *token_header;              /* "X-Consul-Token: ..." or NULL */
    struct ward_instances statics;   /* static: every entry, name set */
    struct ward_httpc *http;
    pthread_mutex_t lock;            /* guards the lists and stopping */
    pthread_cond_t cond;             /* signalled on stop (CLOCK_MONOTONIC) */
    bool stopping;
    struct ward__reg_watch *watches;
    struct ward__reg_keep *keeps;
};

/* consul.c: the HTTP operations. */
enum ward_err ward__consul_register(struct ward_registry *r, const struct ward_registration *reg);
enum ward_err ward__consul_deregister(struct ward_registry *r, const char *id);
enum ward_err ward__consul_known(struct ward_registry *r, const char *id);
/* One health query; index 0 = non-blocking. *index_out gets X-Consul-Index (0 read as 1). */
enum ward_err ward__consul_health(struct ward_registry *r, const char *name, uint64_t index,
                                  int64_t wait, uint64_t *index_out, struct ward_instances *out);

/* static.c: parses "name=host:port,..." into r->statics; copies of name's entries. */
enum ward_err ward__static_parse(struct ward_registry *r, const char *spec);
enum ward_err ward__static_find(const struct ward_registry *r, const char *name,
                                struct ward_instances *out);

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
