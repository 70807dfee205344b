/* config.h — ward-gateway's configuration: routes with their per-route policies, loaded
 * from a YAML file (docs/gateway.md) or built in, and the longest-prefix route match. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/breaker.h>
#include <ward/err.h>
#include <ward/retry.h>

/* Inbound rate limit per client (API key name, else client address). rate 0 is off. */
struct gw_limit {
    double rate;   /* events per second per client; 0 = no limit */
    int64_t burst; /* tokens per client; when not given, ceil(rate) (at least 1) */
};

/* Circuit-breaker settings of the route's upstream service. The gateway maps them onto
 * struct ward_breaker_settings with gw_breaker_settings(): failures → a ready_to_trip
 * that trips at that many consecutive failures, open_timeout_ns → timeout_ns,
 * half_open_requests → max_requests. Two routes to one service must agree on them. */
struct gw_breaker {
    uint32_t failures;           /* consecutive failures that trip it; default 5 */
    int64_t open_timeout_ns;     /* open before half-open; default 30 s */
    uint32_t half_open_requests; /* probes admitted half-open; default 1 */
};

/* What an open breaker answers at once. body NULL: a 503-style problem
 * (application/problem+json) with Retry-After; else body, a JSON text checked at load,
 * sent as application/json with status. */
struct gw_fallback {
    int status; /* 100..599; default 503 */
    char *body; /* owned; NULL = the problem */
};

/* Fault injection, off unless configured: abort_percent of requests answer abort_status
 * without reaching the upstream; delay_percent of requests wait delay_ns first. */
struct gw_fault {
    double abort_percent; /* 0..100; default 0 */
    int abort_status;     /* 100..599; default 503 */
    double delay_percent; /* 0..100; default 0 */
    int64_t delay_ns;     /* default 0 */
};

struct gw_route {
    char *prefix;  /* owned; "/api/zakat": starts with '/', no trailing '/', matched on
                    * whole path segments */
    char *service; /* owned; the registry service name */
    char *rewrite; /* owned; replaces the prefix upstream: "" strips it; NULL keeps the
                    * path unchanged */
    int64_t timeout_ns;             /* the whole call, retries included; default 5 s */
    struct ward_retry_policy retry; /* ward_retry_policy_default with 2 attempts, 50 ms */
    struct gw_limit limit;
    struct gw_breaker breaker;
    struct gw_fallback fallback;
    bool auth;                      /* needs an API key; default false */
    struct gw_fault fault;
    int line; /* where the route is defined in the file; 0 for the built-in routes */
};

struct gw_config {
    struct gw_route *routes; /* owned; in file order */
    size_t nroutes;
    int64_t body_limit;     /* largest request body, bytes; default 1 MiB */
    int64_t response_limit; /* largest upstream response body, bytes; default 8 MiB */
    size_t rewrite_grow;    /* the most any rewrite lengthens a path, for gw_route_match */
    char *path;             /* owned; the file it came from, NULL for the built-in one */
};

/* The built-in configuration (DESIGN.md §7), for when no file is given: /api/zakat →
 * zakat-service with the prefix stripped; /api/payments, /api/invoices, /api/accounts,
 * /api/transactions → payment-service, invoice-service, accounting-service (twice) with
 * "/api" stripped; every route with the defaults of docs/gateway.md. Returns OK and the
 * configuration in *out, which the caller owns (gw_config_free); NOMEM, with *out NULL. */
WARD_MUST_CHECK enum ward_err gw_config_defaults(struct gw_config **out);

/* Loads the YAML file at path. Returns OK and the configuration in *out, which the caller
 * owns (gw_config_free). On failure *out is NULL and errbuf (when errlen > 0) holds one
 * line "FILE:LINE: reason" (just "FILE: reason" when the file cannot be read): SYSTEM
 * when it cannot be read, SYNTAX for malformed YAML or any semantic error (unknown key,
 * wrong type, bad duration, size, percent or status, bad or duplicate prefix, missing
 * service, fallback body not JSON, ...), NOMEM, INVAL for NULL arguments. Reads the file
 * and nothing else; keeps no state, so a reload loads a new one and swaps it in only
 * when this returned OK. */
WARD_MUST_CHECK enum ward_err gw_config_load(const char *path, struct gw_config **out,
                                             char *errbuf, size_t errlen);

/* Frees cfg and everything it owns. NULL is a no-op. */
void gw_config_free(struct gw_config *cfg);

/* The route whose prefix matches path (as received: it may carry a query string) on a
 * whole-segment boundary, the longest such prefix; NULL when none does. "/api/zakat"
 * matches "/api/zakat", "/api/zakat/x" and "/api/zakat?q", not "/api/zakatx". The
 * returned route is owned by cfg.
 *
 * When out_path is not NULL it receives the upstream path: the prefix replaced by the
 * route's rewrite (kept when rewrite is NULL), the query string kept, an empty path
 * becoming "/" ("/api/zakat?q" with rewrite "" gives "/?q"). out_len of
 * strlen(path) + cfg->rewrite_grow + 2 always suffices; when out_len is too small, the
 * route is still returned and out_path is "" (never a valid result). Pure; safe to call
 * from many threads on one cfg. */
const struct gw_route *gw_route_match(const struct gw_config *cfg, const char *path,
                                      char *out_path, size_t out_len);

/* Fills s for the breaker of route r's service: ward_breaker_settings_default, then
 * timeout_ns and max_requests from r->breaker. ready_to_trip stays NULL (the caller
 * installs one tripping at r->breaker.failures consecutive failures, with its own arg),
 * and so do the name, callbacks and clock. */
void gw_breaker_settings(const struct gw_route *r, struct ward_breaker_settings *s);

#endif
