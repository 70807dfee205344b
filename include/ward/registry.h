/* registry.h — service-registry client: register, deregister, discover healthy instances
 * and watch them into a local cache; backends consul (HTTP API), etcd (v3 JSON gateway,
 * leases, etcd's endpoints format) and static (DESIGN.md §3). */
#ifndef WARD_REGISTRY_H
#define WARD_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/retry.h>

struct ward_registry;
struct ward_log;

struct ward_registry_settings {
    const char *url;           /* "consul://host:port", "etcd://host:port[,host:port...]"
                                * (a cluster's client endpoints, failed over in turn),
                                * "static:name=host:port,..."; NULL or "" = none (every
                                * operation is a no-op returning OK and discover finds
                                * nothing); copied; default NULL */
    const char *token;         /* sent as X-Consul-Token; NULL = $WARD_CONSUL_TOKEN when set */
    int64_t request_timeout;   /* ns per plain request (register, discover...); default 2 s */
    int64_t watch_wait;        /* ns, the blocking query's `wait`; it also bounds how long
                                * ward_registry_free waits for a watch; >= 1 ms; default 2 s */
    double watch_rate;         /* the watch loop's token bucket: queries per second (burst
                                * 2, as Consul advises); > 0; default 5 */
    int64_t keep_period;       /* ns between anti-entropy checks of keep_registered;
                                * >= 1 ms; default 10 s */
    struct ward_retry_policy backoff; /* delays while the registry is down; default base
                                       * 100 ms, cap 5 s, full jitter */
    const struct ward_clock *clock;   /* the rate limiter's; NULL = the real clock */
    int64_t lease_ttl;         /* etcd: ns, the registration lease's TTL, kept alive every
                                * third of it (etcd raises it to its minimum, 2 s by
                                * default); >= 1 s; default 10 s */
    int64_t watch_silence;     /* etcd: ns without a byte on a watch stream (which asks for
                                * progress notifications, every 10 min by default) after
                                * which it is taken for dead and read again; default 11 min */
    struct ward_log *log;             /* anti-entropy's re-registrations are logged here
                                       * (INFO); borrowed, must outlive the client; NULL
                                       * = silent; default NULL */
};

/* One instance of a service. */
struct ward_instance {
    char *id;
    char *name;
    char *address; /* the service address, or the node's when the service has none */
    uint16_t port;
};

/* A list of instances, sorted by id; release it with ward_instances_fini. */
struct ward_instances {
    struct ward_instance *items;
    size_t len;
};

/* What ward_registry_register sends. Strings are borrowed for the call (keep_registered
 * copies them). */
struct ward_registration {
    const char *id;        /* unique per agent; required */
    const char *name;      /* the service name; required */
    const char *address;   /* reachable host (not 0.0.0.0); required */
    uint16_t port;         /* required, > 0 */
    const char *const *tags;  /* NULL-terminated; may be NULL */
    const char *version;   /* Meta {"version": ...}; NULL sends no Meta entry */
    const char *check_path;     /* HTTP check on http://address:port<check_path>; NULL =
                                 * "/ready"; "" = no check */
    int64_t check_interval;     /* ns; 0 = 2 s */
    int64_t check_timeout;      /* ns; 0 = 1 s */
    int64_t deregister_after;   /* DeregisterCriticalServiceAfter in ns; 0 = not sent */
    const char *initial_status; /* NULL = "passing" (we register once ready) */
};

/* Called from the watch thread on every change, with the full current list (borrowed for
 * the call). Must not call ward_registry_free. */
typedef void (*ward_registry_watch_fn)(const struct ward_instances *now, void *arg);

/* Fills s with the defaults above. */
void ward_registry_settings_default(struct ward_registry_settings *s);

/* A client for s->url. INVAL when s or out is NULL, on an unknown scheme, a missing or
 * bad host or port (1-65535), a static entry that is not name=host:port, or a bad
 * setting; NOMEM; SYSTEM when the HTTP client cannot start. On success the caller owns
 * *out (ward_registry_free); on failure *out is NULL. */
WARD_MUST_CHECK enum ward_err ward_registry_new(const struct ward_registry_settings *s,
                                                struct ward_registry **out);

/* Stops the watch and keep_registered threads and frees r. A blocking query in flight is
 * not aborted: it returns within watch_wait (+ wait/16, Consul's jitter), so this waits at
 * most that long. Backoff sleeps are interrupted at once. NULL is a no-op. */
void ward_registry_free(struct ward_registry *r);

/* Registers reg (PUT /v1/agent/service/register, with the HTTP check and Meta). INVAL on a
 * bad reg; transport errors of ward_httpc_do; HTTP_STATUS on a non-200 answer. A no-op for
 * static and none. Thread-safe.
 * etcd: grants a lease of lease_ttl and puts services/<name>/<host:port> = {"Op":0,
 * "Addr":"host:port","Metadata":{"id","name","version","tags"}} under it (the format of
 * etcd's endpoints package, so etcd's own resolvers see the instance), then keeps it as
 * keep_registered does: an etcd registration lives only while it is kept alive. */
WARD_MUST_CHECK enum ward_err ward_registry_register(struct ward_registry *r,
                                                     const struct ward_registration *reg);

/* Deregisters id (and stops keep_registered for it first). NOT_FOUND when the agent does
 * not know it (404); else as register. A no-op for static and none. Thread-safe.
 * etcd: revokes the lease, which deletes the key at once; NOT_FOUND when this client did
 * not register id. */
WARD_MUST_CHECK enum ward_err ward_registry_deregister(struct ward_registry *r, const char *id);

/* The instances of name whose checks all pass (/v1/health/service/name?passing), into
 * *out (caller finis it; emptied on failure). Errors as register. Thread-safe.
 * etcd: a range over the prefix services/<name>/ (values that do not parse are skipped). */
WARD_MUST_CHECK enum ward_err ward_registry_discover(struct ward_registry *r, const char *name,
                                                     struct ward_instances *out);

/* Starts watching name: a thread (all signals blocked) runs blocking queries (etcd: a
 * range, then a watch stream from the range's revision + 1, read again from a range
 * after a cancel, a compaction, a disconnect or watch_silence) and keeps a cache current, calling fn(list, arg) on every change (and once for the first answer).
 * Index rules: a backwards index resets to 0 (one non-blocking read), an index 0 in an
 * answer counts as 1, so 0 is only sent first and after a reset; the loop takes a token
 * from its own bucket (burst 2) before each query; while the registry is down the cache
 * keeps the last known instances and the loop backs off with jitter. static: fn is
 * called once, here. fn may be NULL. EXISTS when name is already watched; INVAL; NOMEM;
 * SYSTEM when the thread cannot start. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_registry_watch(struct ward_registry *r, const char *name,
                                                  ward_registry_watch_fn fn, void *arg);

/* The cached instances of a watched name, without any network call: NOT_FOUND when name
 * is not watched; an empty list before the first answer. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_registry_cached(struct ward_registry *r, const char *name,
                                                   struct ward_instances *out);

/* Anti-entropy: a thread checks every keep_period that the agent still knows reg->id
 * (GET /v1/agent/service/:id) and registers reg again on a 404 (the agent restarted
 * without its data, or reaped us), logging "re-registered" to s.log. reg is copied.
 * EXISTS when that id is already kept; INVAL; NOMEM; SYSTEM. A no-op for static and none.
 * Thread-safe.
 * etcd: there is no agent to check us, so the thread does both jobs: it keeps the lease
 * alive every lease_ttl/3 (a keep-alive answered without a TTL means the lease is gone:
 * it grants a new one and puts the key again, logging "re-registered"), and runs reg's
 * HTTP check itself every check_interval, deleting the key while the check fails and
 * putting it back once it passes. OK (not EXISTS) when register already keeps id; else
 * it registers in the background, retrying while etcd is down. */
WARD_MUST_CHECK enum ward_err ward_registry_keep_registered(struct ward_registry *r,
                                                            const struct ward_registration *reg);

/* Frees the list and zeroes it. NULL is a no-op. */
void ward_instances_fini(struct ward_instances *l);

#endif
