/* registry.h — what ward-registry's files share: the context every handler gets, the
 * Consul JSON shapes and answers (json.c), request decoding (decode.c), blocking queries
 * (blocking.c, index- and hash-based) and the route tables of each endpoint group. */
#ifndef REG_REGISTRY_H
#define REG_REGISTRY_H

#include <ward/http.h>
#include <ward/log.h>
#include <ward/metrics.h>

#include "state.h"

struct reg_watchers;
struct reg_checks;
struct reg_reaper;
struct reg_persist;

struct reg_ctx {
    struct reg_state *st;
    struct reg_watchers *watchers;
    struct reg_checks *checks;
    struct reg_reaper *reaper;
    struct reg_persist *persist;
    struct ward_log *log;
    struct ward_metrics *metrics;
    /* flags */
    const char *data_dir;  /* --data-dir; NULL or "" keeps everything in memory */
    int64_t reap_min;      /* --reap-min: floor of DeregisterCriticalServiceAfter (1m) */
    int64_t reap_interval; /* --reap-interval: how often the reaper looks (30s) */
};

/* --- json.c: Consul's shapes, durations, answers --- */

/* Member canon of obj matched as Go does: case-insensitively, and ignoring underscores
 * so that snake_case aliases match too. NULL when absent or obj is not an object. */
json_t *reg_json_get(const json_t *obj, const char *canon);

/* Go's time.ParseDuration ("1m30s", "1.5s", "500ms", "0"); false on bad syntax,
 * overflow or a negative value. */
bool reg_duration_parse(const char *text, int64_t *ns);
/* Go's Duration.String(): "0s", "10s", "1m30s", "1h0m0s", "500ms". */
void reg_duration_format(int64_t ns, char *buf, size_t size);

json_t *reg_json_node(const struct reg_state *st);
/* The agent's view of a service (/agent/services); with_index adds Create/ModifyIndex. */
json_t *reg_json_agent_service(const struct reg_service *svc, bool with_index);
json_t *reg_json_check(const struct reg_state *st, const struct reg_check *c);
json_t *reg_json_catalog_service(const struct reg_state *st, const struct reg_service *svc);

/* 200 with body (stolen; NULL answers 500), indented when the query has ?pretty, and
 * X-Consul-Index etc. when index > 0. */
void reg_respond_json(struct ward_req *req, json_t *body, uint64_t index);
/* 200 with an empty body: the answer of every write. */
void reg_respond_empty(struct ward_req *req);
/* An error as Consul writes it: status and a plain-text body. */
void reg_respond_error(struct ward_req *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The server's error renderer (ward_error_fn): framework errors in Consul's words. */
void reg_render_error(struct ward_req *req, int status, const char *detail, void *arg);

/* Go's strconv.ParseBool for query flags: absent is false, a key without a value true;
 * false when the value is neither (the caller answers 400). */
bool reg_query_bool(const struct ward_req *req, const char *name, bool *out);

/* Checks ?dc (only dc1) and ?stale with ?consistent; answers the error itself and
 * returns false on a conflict. */
bool reg_query_common(struct ward_req *req);

#define REG_MAX_NAME 512
#define REG_MAX_TAGS 16
#define REG_MAX_TAG 256

/* True when every one of tags[0..n) is among the service's tags (health.c). */
bool reg_has_tags(const struct reg_service *svc, const char (*tags)[REG_MAX_TAG], size_t n);

/* --- decode.c: service and check definitions from a register body --- */

/* Decodes a service definition with its checks. On failure answers the 400 itself and
 * returns false. On success *svc and checks[0..*n) are the caller's. */
bool reg_decode_service(struct ward_req *req, const json_t *body, struct reg_service **svc,
                        struct reg_check ***checks, size_t *n);

/* Decodes a check definition of PUT /agent/check/register (ID defaults to Name, which
 * is required; ServiceID optional). On failure answers the 400 itself and returns false;
 * on success *out is the caller's. */
bool reg_decode_check(struct ward_req *req, const json_t *body, struct reg_check **out);

/* --- blocking.c: index-based and hash-based blocking queries --- */

/* Sets *index to the query's index over the state (never 0; lock held) and, when render
 * is true, returns its answer (NULL when out of memory). With render false it returns
 * NULL: watchers first learn whether their index moved, cheaply. */
typedef json_t *(*reg_query_fn)(const struct reg_state *st, const void *params, uint64_t *index,
                                bool render);

/* Starts the watcher list and its timer thread, which also drives TTL expiry. */
WARD_MUST_CHECK enum ward_err reg_watchers_new(struct reg_ctx *ctx, struct reg_watchers **out);
/* Answers every pending watcher with the current state; later queries answer at once. */
void reg_watchers_drain(struct reg_watchers *w);
/* Stops the thread and frees (after the server stopped). NULL is a no-op. */
void reg_watchers_free(struct reg_watchers *w);

/* Runs a blocking-capable GET: parses index and wait (answering 400 on bad values),
 * answers at once or holds req until the query's index passes the requested one or the
 * wait ends. params (size bytes) is copied for later runs. */
void reg_block(struct reg_ctx *ctx, struct ward_req *req, reg_query_fn fn, const void *params,
               size_t size);

/* A hash-blocking query (lock held): sets *hash to the content hash of its answer and
 * returns true; returns false when it cannot be held (the object is gone, or memory ran
 * out). When req is not NULL it also answers req: the data with X-Consul-ContentHash,
 * or the 404 (or 500) that goes with false. */
typedef bool (*reg_hash_fn)(const struct reg_state *st, const void *params, uint64_t *hash,
                            struct ward_req *req);

/* Runs a hash-blocking GET (GET /agent/service/:id): parses wait (400 on a bad value) and
 * answers at once, or, when ?hash equals the current content hash, holds req until the
 * hash changes, the object goes or the wait (default, cap and jitter as reg_block) ends.
 * A hash that is not this registry's 16 lowercase hex digits never matches. params (size
 * bytes) is copied for later runs. */
void reg_block_hash(struct reg_ctx *ctx, struct ward_req *req, reg_hash_fn fn, const void *params,
                    size_t size);

/* --- checks.c: the runner of HTTP and TCP checks --- */

/* Starts a few worker threads that probe every HTTP/TCP check at its interval (a new
 * check at once) and publish results through the state, with Consul's thresholds.
 * Counts registry_check_runs_total{type,status} in ctx->metrics. */
WARD_MUST_CHECK enum ward_err reg_checks_new(struct reg_ctx *ctx, struct reg_checks **out);
/* Stops the workers (waiting for probes under way) and frees. NULL is a no-op. */
void reg_checks_free(struct reg_checks *r);

/* --- reaper.c: DeregisterCriticalServiceAfter --- */

/* Deregisters, every ctx->reap_interval, the services that have a check critical for
 * longer than its DeregisterCriticalServiceAfter (raised to ctx->reap_min). */
WARD_MUST_CHECK enum ward_err reg_reaper_new(struct reg_ctx *ctx, struct reg_reaper **out);
void reg_reaper_free(struct reg_reaper *r);
/* One pass (lock held); returns the number of services removed. */
size_t reg_reap(struct reg_ctx *ctx);

/* --- persist.c: --data-dir --- */

/* Loads DIR/registry.json into ctx->st (a missing file is an empty registry; a corrupt
 * or unreadable one is logged and ignored) and starts a writer thread that saves the
 * state atomically after changes. */
WARD_MUST_CHECK enum ward_err reg_persist_new(struct reg_ctx *ctx, struct reg_persist **out);
/* Writes a last snapshot, stops the writer and frees. NULL is a no-op. */
void reg_persist_free(struct reg_persist *p);

/* --- route tables --- */

WARD_MUST_CHECK enum ward_err reg_agent_routes(struct ward_server *srv, struct reg_ctx *ctx);
WARD_MUST_CHECK enum ward_err reg_health_routes(struct ward_server *srv, struct reg_ctx *ctx);
WARD_MUST_CHECK enum ward_err reg_catalog_routes(struct ward_server *srv, struct reg_ctx *ctx);
WARD_MUST_CHECK enum ward_err reg_status_routes(struct ward_server *srv, struct reg_ctx *ctx);

/* Adds method on pattern plus an OPTIONS route answering 200 with Allow. */
WARD_MUST_CHECK enum ward_err reg_route(struct ward_server *srv, const char *method,
                                        const char *pattern, ward_handler_fn fn, void *arg);

#endif
