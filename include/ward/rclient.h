/* rclient.h — the resilient client: one blocking call to one named dependency through
 * deadline → bulkhead → rate limiter → (per attempt: circuit breaker → HTTP client) →
 * retry with a retry budget, each layer optional, each refusal a distinct error. */
#ifndef WARD_RCLIENT_H
#define WARD_RCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/balancer.h>
#include <ward/breaker.h>
#include <ward/budget.h>
#include <ward/bulkhead.h>
#include <ward/clock.h>
#include <ward/err.h>
#include <ward/httpc.h>
#include <ward/limiter.h>
#include <ward/loop.h>
#include <ward/metrics.h>
#include <ward/registry.h>
#include <ward/retry.h>

struct ward_rclient;

/* The longest dependency name, without its NUL (the limiter's name limit). */
#define WARD_RCLIENT_NAME_MAX 63

/* Settings of one dependency. Fill with ward_rclient_settings_default, then change fields.
 * Durations are nanoseconds on `clock`. Every layer takes rc's clock (the `clock` fields
 * of the layers' own settings are ignored) and, when its own `name` is NULL, the
 * dependency's name, which labels its metrics. */
struct ward_rclient_settings {
    const char *name;     /* the dependency; 1..WARD_RCLIENT_NAME_MAX bytes; copied;
                           * default "default" */
    const char *base_url; /* "http://host:port" or https, optionally with a path prefix;
                           * a trailing '/' is dropped; copied; default
                           * "http://127.0.0.1:8082"; not used with discovery */
    struct ward_httpc *httpc; /* borrowed, must outlive rc and run on the same clock;
                               * NULL (default): rc creates and owns one with the httpc
                               * defaults, its clock and total timeout set from here */
    const struct ward_clock *clock; /* NULL (default) = the real clock; must outlive rc */
    int64_t call_timeout_ns;    /* the longest a call may take, retries and waits included:
                                 * its deadline is the earlier of the caller's and now +
                                 * this; >= 1 ms; default 10 s */
    int64_t attempt_timeout_ns; /* each attempt's own limit; 0 (default) = what is left of
                                 * the call's deadline; else >= 1 ms */
    struct {
        bool enable;                           /* default true */
        struct ward_bulkhead_settings settings; /* default max_concurrent 64 */
    } bulkhead;
    struct {
        bool enable; /* default false: a rate must be chosen for the dependency */
        bool wait;   /* false (default): fail at once with RATE_LIMITED when no token is
                      * there; true: wait for one if it comes before the deadline */
        struct ward_limiter_settings settings; /* default limit 100/s, burst 100 */
    } limiter;
    struct {
        bool enable;                          /* default true */
        struct ward_breaker_settings settings; /* default gobreaker's: trips after more
                                                * than 5 consecutive failures, open 60 s,
                                                * 1 half-open probe; is_successful is not
                                                * used: rc reports each outcome itself */
        struct ward_breaker *shared; /* borrowed, must outlive rc: several clients guard
                                      * one dependency with one breaker (a gateway's
                                      * routes to one service), and settings is then
                                      * ignored; its owner exports it; default NULL */
    } breaker;
    struct {
        bool enable;                    /* default true; false = one attempt per call */
        struct ward_retry_policy policy; /* default ward_retry_policy_default: 3 attempts,
                                          * 100 ms base ×2 up to 10 s, full jitter,
                                          * Retry-After up to 60 s */
    } retry;
    struct {
        bool enable;                          /* default true; exists only with retries */
        struct ward_budget_settings settings; /* default Finagle's: 20 % of the requests
                                               * over 10 s plus 10 retries a second */
    } budget;
    struct {
        /* Calls go to the instances of a service instead of base_url: rc follows the
         * service's watch in registry (sharing it with anyone else following that name),
         * keeps a balancer in step with it, and picks an instance per attempt. The breaker
         * stays one per service; the balancer ejects instances one by one. */
        struct ward_registry *registry; /* borrowed, must outlive rc; NULL (default): off */
        const char *service; /* the service's name in the registry; NULL = the
                              * dependency's name; copied */
        bool https;          /* the instances speak https; default false */
        struct ward_balancer_settings balancer; /* default ward_balancer_settings_default;
                                                 * name NULL = the dependency's; its clock
                                                 * is rc's */
        struct ward_balancer *shared_balancer; /* borrowed, must outlive rc: several
                                                * clients of one service (a gateway's
                                                * routes to it) balance and eject with one
                                                * balancer, each keeping it in step with
                                                * the same watch; `balancer` is then
                                                * ignored, and its owner exports it;
                                                * default NULL */
    } discovery;
};

/* Fills s with the defaults above (every layer name NULL: the dependency's). */
void ward_rclient_settings_default(struct ward_rclient_settings *s);

/* A client for the dependency s describes (copied). INVAL when s or out is NULL, the name
 * is empty or too long, base_url is not http(s)://..., a timeout is out of range, or a
 * layer's settings are refused by its own _new; NOMEM; SYSTEM when libcurl cannot start.
 * On success the caller owns *out (ward_rclient_free); on failure *out is untouched. */
WARD_MUST_CHECK enum ward_err ward_rclient_new(const struct ward_rclient_settings *s,
                                               struct ward_rclient **out);

/* Frees rc, its layers and its own HTTP client (never a borrowed one). NULL is a no-op.
 * No call may be running. */
void ward_rclient_free(struct ward_rclient *rc);

/* Makes call to the dependency. call->url is a path with optional query ("/v1/x?y=1"),
 * starting with '/', resolved against base_url (with discovery: against the instance each
 * attempt picks); every other field is as ward_httpc_do's,
 * and call->deadline (0 = none) is on rc's clock. In order:
 *   1. deadline: the earlier of call->deadline and now + call_timeout_ns; less than 1 ms
 *      left → DEADLINE, nothing sent;
 *   2. bulkhead: no free slot → BULKHEAD_FULL at once; the slot is held to the end;
 *   3. limiter: no token → RATE_LIMITED at once (wait mode: also when the token would
 *      come after the deadline; otherwise it waits);
 *   4. the retry budget counts one request;
 *   5. each attempt: the breaker admits it or the call stops at once with OPEN or
 *      TOO_MANY_REQUESTS (never retried, nothing sent); with discovery the balancer picks
 *      an instance (a retry avoids the one that just failed when another is available;
 *      no instance at all is UNAVAILABLE, retried as a connect failure would be, and
 *      not held against the breaker) and learns the attempt's outcome (5xx: a failure;
 *      CONNECT, TRANSPORT, TIMEOUT: a failure; any other answer: a success; the
 *      call's own DEADLINE and local errors: excluded); the request goes out with a
 *      deadline of the call's (or the attempt timeout, the earlier), X-Request-Timeout-Ms,
 *      X-Request-Id and a child traceparent (same trace, a new span per attempt); its
 *      outcome goes to the breaker: a failure for 5xx, 429, CONNECT, TRANSPORT and
 *      TIMEOUT (the attempt timeout), a success for any other response, TOO_LARGE
 *      included (the dependency answered), and excluded for the call's own DEADLINE and
 *      local errors;
 *   6. the retry policy decides (ward_retry_plan: 502/503/504, 429, transport errors and
 *      timeouts, only for idempotent methods or with an Idempotency-Key — or when the
 *      request was certainly never sent — honouring Retry-After, never past the
 *      deadline); a retry withdraws from the budget and then sleeps on rc's clock.
 * Returns:
 *   OK                a 1xx-3xx response, in *res;
 *   HTTP_STATUS       a final 4xx/5xx response, in *res (read its problem body);
 *   OPEN, TOO_MANY_REQUESTS  the breaker refused an attempt;
 *   RATE_LIMITED, BULKHEAD_FULL  refused before any attempt;
 *   BUDGET_EXHAUSTED  a retry was due but the budget had none left;
 *   DEADLINE          the deadline was spent, passed during an attempt, or the next
 *                     attempt (its backoff or Retry-After) could not start before it;
 *   CONNECT, TRANSPORT, TIMEOUT, TOO_LARGE  the last attempt's transport error;
 *   UNAVAILABLE       with discovery: the registry listed no instance to pick;
 *   INVAL             a NULL argument, a url not starting with '/', or what
 *                     ward_httpc_do refuses; NOMEM.
 * Whatever it returns, *res holds the last attempt's result as ward_httpc_do left it (a
 * breaker refusal or a budget stop leaves the previous attempt's; status 0 and body NULL
 * when no response arrived or no attempt was made), except res->sent, which is true when
 * ANY attempt of the call may have reached the dependency (so a final CONNECT after an
 * earlier timeout is not mistaken for "never sent"), and must be released with
 * ward_http_result_fini. Thread-safe: any number of threads may call one rc. Blocks for
 * the attempts and the waits. */
WARD_MUST_CHECK enum ward_err ward_rclient_call(struct ward_rclient *rc,
                                                const struct ward_http_call *call,
                                                struct ward_http_result *res);

/* The event-driven form of ward_rclient_call: the same layers and decisions (the policy
 * code is shared), driven by loop instead of a blocked thread. Copies call (strings,
 * headers, body: it may live on the caller's stack) and returns at once; the steps run on
 * the loop thread: admission, each attempt sent with ward_httpc_send, each wait (backoff,
 * Retry-After, the limiter's delay) a ward_loop_after timer, the bulkhead slot held from
 * admission to the end. cb(err, res, arg) then runs once on the loop thread with what
 * ward_rclient_call would have returned and left in *res (res as in ward_httpc_done_fn:
 * the callback owns what it holds and releases it with ward_http_result_fini). Attempts go
 * through the loop's own HTTP client (ward_loop_httpc; rc's is not used), so the HTTP
 * client metrics of these calls are the loop's to export. Thread-safe. Returns OK (cb
 * will run), or without calling cb: INVAL on a NULL argument, or when loop's clock is not
 * rc's; NOMEM; STATE when the loop is stopping. When the loop stops mid-call, the call
 * ends with STATE (an attempt aborted or refused by the loop). rc must outlive the call. */
WARD_MUST_CHECK enum ward_err ward_rclient_call_async(struct ward_rclient *rc,
                                                      struct ward_loop *loop,
                                                      const struct ward_http_call *call,
                                                      ward_httpc_done_fn *cb, void *arg);

/* The dependency's name; owned by rc. */
const char *ward_rclient_name(const struct ward_rclient *rc);

/* rc's layers, borrowed from rc (NULL when the layer is disabled): to read their stats,
 * change a rate at run time, or watch the breaker. */
struct ward_breaker *ward_rclient_breaker(const struct ward_rclient *rc);
struct ward_bulkhead *ward_rclient_bulkhead(const struct ward_rclient *rc);
struct ward_limiter *ward_rclient_limiter(const struct ward_rclient *rc);
struct ward_budget *ward_rclient_budget(const struct ward_rclient *rc);
struct ward_balancer *ward_rclient_balancer(const struct ward_rclient *rc);

/* Registers in reg every enabled layer's families (each primitive's _export, and the
 * HTTP client's when rc owns it; a borrowed one is its owner's to export) and
 *   ward_client_calls_total{dependency,result}  every call by its result: ok,
 *       http_status, open, too_many_requests, rate_limited, bulkhead_full,
 *       budget_exhausted, deadline, connect, transport, timeout, too_large,
 *       unavailable, error;
 *   ward_client_retries_total{dependency}       retries made (after a budget withdrawal).
 * reg must outlive rc. Several clients may share reg (give each its own name; owned HTTP
 * clients share the unlabelled ward_http_client_* series). INVAL on NULL or a family
 * clash; STATE when rc was already exported; NOMEM. On failure some families may stay
 * registered. Thread-safe against calls. */
WARD_MUST_CHECK enum ward_err ward_rclient_export(struct ward_rclient *rc,
                                                  struct ward_metrics *reg);

/* --- the policy as steps, for a caller with its own event loop and transport --------- */

struct ward_rcall;

/* What the caller of a step does next. */
enum ward_rstep {
    WARD_RSTEP_SEND, /* send the attempt ward_rcall_attempt filled in */
    WARD_RSTEP_WAIT, /* wait *wait_ns on rc's clock, then call ward_rcall_attempt */
    WARD_RSTEP_DONE  /* call ward_rcall_end */
};

/* Admits a call (call and its strings are borrowed until ward_rcall_end): works out the
 * deadline, takes a bulkhead slot and a limiter token, deposits in the retry budget.
 * *step is WAIT (possibly 0 ns) before the first ward_rcall_attempt, or DONE (refused).
 * INVAL on NULL arguments; NOMEM. On OK the caller owns *out and ends it with
 * ward_rcall_end whatever the steps say. */
WARD_MUST_CHECK enum ward_err ward_rcall_new(struct ward_rclient *rc,
                                             const struct ward_http_call *call,
                                             struct ward_rcall **out, enum ward_rstep *step,
                                             int64_t *wait_ns);
/* Starts an attempt: checks the deadline, asks the breaker, picks an instance, and fills
 * *out with the request to send: out->url is absolute ("http://host:port/path") and
 * out->deadline the attempt's; the strings stay valid until the next step. SEND, DONE,
 * or WAIT when no instance could be picked and the policy waits for one. */
enum ward_rstep ward_rcall_attempt(struct ward_rcall *c, struct ward_http_call *out,
                                   int64_t *wait_ns);
/* The attempt's outcome, as ward_httpc_do would give it (err, and res with status,
 * headers for Retry-After, and sent): reported to the breaker and the balancer, then the
 * retry policy and budget decide. WAIT before the next attempt, or DONE. */
enum ward_rstep ward_rcall_outcome(struct ward_rcall *c, enum ward_err err,
                                   const struct ward_http_result *res, int64_t *wait_ns);
/* Ends the call (settles what is still owed, counts its result) and frees c. Returns the
 * final error: OK, HTTP_STATUS (the last response was >= 400), or why there is none;
 * *sent_any (may be NULL) tells whether some attempt may have reached the dependency. */
enum ward_err ward_rcall_end(struct ward_rcall *c, bool *sent_any);

#endif
