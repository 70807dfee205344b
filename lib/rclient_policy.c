/* rclient_policy.c — the resilient client's decisions as non-blocking steps: admission
 * (deadline, bulkhead, limiter, budget), each attempt through the breaker, and what an
 * attempt's outcome leads to (retry after a delay, or the final error). */
#include "rclient_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const result_names[WARD__RRES_COUNT] = {
    [WARD__RRES_OK] = "ok",
    [WARD__RRES_HTTP_STATUS] = "http_status",
    [WARD__RRES_OPEN] = "open",
    [WARD__RRES_TOO_MANY] = "too_many_requests",
    [WARD__RRES_RATE_LIMITED] = "rate_limited",
    [WARD__RRES_BULKHEAD_FULL] = "bulkhead_full",
    [WARD__RRES_BUDGET] = "budget_exhausted",
    [WARD__RRES_DEADLINE] = "deadline",
    [WARD__RRES_CONNECT] = "connect",
    [WARD__RRES_TRANSPORT] = "transport",
    [WARD__RRES_TIMEOUT] = "timeout",
    [WARD__RRES_TOO_LARGE] = "too_large",
    [WARD__RRES_UNAVAILABLE] = "unavailable",
    [WARD__RRES_ERROR] = "error",
};

const char *ward__rclient_result_name(enum ward__rresult r)
{
    return (unsigned)r < WARD__RRES_COUNT ? result_names[r] : "error";
}

static enum ward__rresult result_of(enum ward_err err)
{
    switch (err) {
    case WARD_ERR_OK: return WARD__RRES_OK;
    case WARD_ERR_HTTP_STATUS: return WARD__RRES_HTTP_STATUS;
    case WARD_ERR_OPEN: return WARD__RRES_OPEN;
    case WARD_ERR_TOO_MANY_REQUESTS: return WARD__RRES_TOO_MANY;
    case WARD_ERR_RATE_LIMITED: return WARD__RRES_RATE_LIMITED;
    case WARD_ERR_BULKHEAD_FULL: return WARD__RRES_BULKHEAD_FULL;
    case WARD_ERR_BUDGET_EXHAUSTED: return WARD__RRES_BUDGET;
    case WARD_ERR_DEADLINE: return WARD__RRES_DEADLINE;
    case WARD_ERR_CONNECT: return WARD__RRES_CONNECT;
    case WARD_ERR_TRANSPORT: return WARD__RRES_TRANSPORT;
    case WARD_ERR_TIMEOUT: return WARD__RRES_TIMEOUT;
    case WARD_ERR_TOO_LARGE: return WARD__RRES_TOO_LARGE;
    case WARD_ERR_UNAVAILABLE: return WARD__RRES_UNAVAILABLE;
    default: return WARD__RRES_ERROR;
    }
}

static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t sum;

    if (__builtin_add_overflow(a, b, &sum))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return sum;
}

/* a - b, saturating, so that a deadline far in the past or future compares right. */
static int64_t sub_sat(int64_t a, int64_t b)
{
    int64_t diff;

    if (__builtin_sub_overflow(a, b, &diff))
        return b < 0 ? INT64_MAX : INT64_MIN;
    return diff;
}

enum ward_err ward__rclient_url(const struct ward_rclient *rc, const char *path, char **out)
{
    size_t plen;
    char *url;

    if (path == NULL || path[0] != '/')
        return WARD_ERR_INVAL;
    plen = strlen(path);
    url = malloc(rc->base_len + plen + 1);
    if (url == NULL)
        return WARD_ERR_NOMEM;
    memcpy(url, rc->base_url, rc->base_len);
    memcpy(url + rc->base_len, path, plen + 1);
    *out = url;
    return WARD_ERR_OK;
}

/* An Idempotency-Key makes any method safe to retry, whether given as the field or as
 * one of the extra header lines. */
static bool has_idempotency_key(const struct ward_http_call *call)
{
    static const char key[] = "Idempotency-Key:";

    if (call->idempotency_key != NULL)
        return true;
    for (const char *const *h = call->headers; h != NULL && *h != NULL; h++)
        if (strncasecmp(*h, key, sizeof key - 1) == 0)
            return true;
    return false;
}

/* The limiter's part of admission: a token now, or (wait mode) one that comes in time. */
static enum ward_err take_token(struct ward__rcall *q, int64_t now, int64_t *wait_ns)
{
    struct ward_limiter_reservation r;

    if (!q->rc->limiter_wait)
        return ward_limiter_allow(q->rc->limiter) == WARD_ERR_OK ? WARD_ERR_OK
                                                                 : WARD_ERR_RATE_LIMITED;
    if (ward_limiter_reserve_n(q->rc->limiter, 1, &r) != WARD_ERR_OK)
        return WARD_ERR_RATE_LIMITED;
    /* the first attempt needs 1 ms of the deadline left after the wait */
    if (r.delay_ns > 0 && add_sat(now, r.delay_ns) > sub_sat(q->deadline, WARD_NS_PER_MS)) {
        ward_limiter_cancel(q->rc->limiter, &r);
        return WARD_ERR_RATE_LIMITED;
    }
    *wait_ns = r.delay_ns;
    return WARD_ERR_OK;
}

enum ward__rstep ward__rcall_start(struct ward__rcall *q, struct ward_rclient *rc,
                                   const struct ward_http_call *call, int64_t *wait_ns)
{
    int64_t now;

    *q = (struct ward__rcall){.rc = rc, .call = call, .err = WARD_ERR_INVAL};
    *wait_ns = 0;
    if (rc == NULL || call == NULL)
        return WARD__RSTEP_DONE;
    /* with discovery each attempt makes its own URL; the path is checked here all the same */
    q->err = rc->disc != NULL ? (call->url != NULL && call->url[0] == '/' ? WARD_ERR_OK
                                                                          : WARD_ERR_INVAL)
                              : ward__rclient_url(rc, call->url, &q->url);
    if (q->err != WARD_ERR_OK)
        return WARD__RSTEP_DONE;
    now = ward_clock_now(rc->clock);
    q->deadline = add_sat(now, rc->call_timeout);
    q->deadline_ours = true;
    if (call->deadline != 0 && call->deadline < q->deadline) {
        q->deadline = call->deadline;
        q->deadline_ours = false;
    }
    q->err = WARD_ERR_DEADLINE;
    if (sub_sat(q->deadline, now) < WARD_NS_PER_MS)
        return WARD__RSTEP_DONE;
    q->has_key = has_idempotency_key(call);
    if (rc->bulkhead != NULL) {
        q->err = ward_bulkhead_acquire(rc->bulkhead);
        if (q->err != WARD_ERR_OK)
            return WARD__RSTEP_DONE;
        q->holds_slot = true;
    }
    if (rc->limiter != NULL) {
        q->err = take_token(q, now, wait_ns);
        if (q->err != WARD_ERR_OK)
            return WARD__RSTEP_DONE;
    }
    if (rc->budget != NULL)
        ward_budget_deposit(rc->budget);
    ward_retry_state_init(&q->retry);
    q->err = WARD_ERR_OK;
    return WARD__RSTEP_WAIT;
}

enum ward__rstep ward__rcall_attempt(struct ward__rcall *q, struct ward_http_call *out,
                                     int64_t *wait_ns)
{
    struct ward_rclient *rc = q->rc;
    int64_t now = ward_clock_now(rc->clock);

    *wait_ns = 0;
    q->err = WARD_ERR_DEADLINE;
    if (sub_sat(q->deadline, now) < WARD_NS_PER_MS)
        return WARD__RSTEP_DONE;
    if (rc->breaker != NULL) {
        q->err = ward_breaker_allow(rc->breaker, &q->ticket);
        if (q->err != WARD_ERR_OK)
            return WARD__RSTEP_DONE;
        q->holds_ticket = true;
    }
    if (rc->disc != NULL) {
        free(q->url);
        q->url = NULL;
        q->err = ward__rdisc_pick(rc->disc, q->avoid, q->call->url, &q->pick, &q->url);
        if (q->err == WARD_ERR_UNAVAILABLE) {
            struct ward_http_result none = {0};
            return ward__rcall_outcome(q, q->err, &none, wait_ns);
        }
        if (q->err != WARD_ERR_OK)
            return WARD__RSTEP_DONE;
        q->holds_pick = true;
    }
    q->attempt_deadline = q->deadline;
    if (rc->attempt_timeout > 0 && add_sat(now, rc->attempt_timeout) < q->deadline)
        q->attempt_deadline = now + rc->attempt_timeout;
    *out = *q->call;
    out->url = q->url;
    out->deadline = q->attempt_deadline;
    q->err = WARD_ERR_OK;
    return WARD__RSTEP_SEND;
}

/* What the breaker makes of an attempt: the dependency failed (5xx, 429, could not be
 * reached or did not answer in time), answered, or the attempt says nothing about it
 * (our own deadline, a local error). */
static enum ward_breaker_outcome breaker_outcome(enum ward_err err, int status)
{
    switch (err) {
    case WARD_ERR_OK:
        return status >= 500 || status == 429 ? WARD_BREAKER_FAILURE : WARD_BREAKER_SUCCESS;
    case WARD_ERR_CONNECT:
    case WARD_ERR_TRANSPORT:
    case WARD_ERR_TIMEOUT:
        return WARD_BREAKER_FAILURE;
    case WARD_ERR_TOO_LARGE:
        return WARD_BREAKER_SUCCESS;
    default:
        return WARD_BREAKER_EXCLUDED;
    }
}

/* What the balancer makes of an attempt: Envoy's consecutive_5xx, with local-origin errors
 * (could not connect, reset, the attempt timed out) mapped to 5xx. */
static enum ward_balancer_outcome balancer_outcome(enum ward_err err, int status)
{
    switch (err) {
    case WARD_ERR_OK:
        return status >= 500 ? WARD_BALANCER_FAILURE_5XX : WARD_BALANCER_SUCCESS;
    case WARD_ERR_CONNECT:
    case WARD_ERR_TRANSPORT:
    case WARD_ERR_TIMEOUT:
        return WARD_BALANCER_FAILURE_TRANSPORT;
    case WARD_ERR_TOO_LARGE:
        return WARD_BALANCER_SUCCESS;
    default:
        return WARD_BALANCER_EXCLUDED;
    }
}

/* The retry policy's view of an attempt. The call's own DEADLINE stays a local error (the
 * plan stops for it at once); a request never sent is safe to repeat whatever its method. */
static void retry_outcome(const struct ward__rcall *q, enum ward_err err,
                          const struct ward_http_result *res, struct ward_retry_outcome *o)
{
    *o = (struct ward_retry_outcome){
        .method = q->call->method != NULL ? q->call->method : "GET",
        .idempotency_key = q->has_key || !res->sent,
    };
    switch (err) {
    case WARD_ERR_OK:
        o->cause = WARD_RETRY_CAUSE_RESPONSE;
        o->status = res->status;
        o->retry_after = ward_http_result_header(res, "Retry-After");
        break;
    case WARD_ERR_CONNECT:
    case WARD_ERR_UNAVAILABLE: /* nothing was sent: the watch may bring an instance */
        o->cause = WARD_RETRY_CAUSE_CONNECT;
        break;
    case WARD_ERR_TIMEOUT: o->cause = WARD_RETRY_CAUSE_TIMEOUT; break;
    case WARD_ERR_TRANSPORT: o->cause = WARD_RETRY_CAUSE_RESET; break;
    default:
        o->cause = WARD_RETRY_CAUSE_LOCAL;
        o->err = err;
        break;
    }
}

enum ward__rstep ward__rcall_outcome(struct ward__rcall *q, enum ward_err err,
                                     const struct ward_http_result *res, int64_t *wait_ns)
{
    struct ward_rclient *rc = q->rc;
    struct ward_retry_outcome o;
    enum ward_retry_verdict v;
    int64_t now, delay = 0;

    *wait_ns = 0;
    /* httpc says DEADLINE for whichever deadline it was given: the attempt's own one
     * passing is a timeout of that attempt, with the call's time left; and so is the
     * client's own call timeout passing (the dependency did not answer within what rc
     * allows it: a failure of the dependency, for the breaker and the balancer). Only the
     * caller's shorter deadline says nothing about the dependency. */
    bool timed_out = err == WARD_ERR_DEADLINE &&
                     (q->attempt_deadline < q->deadline || q->deadline_ours);
    if (timed_out)
        err = WARD_ERR_TIMEOUT;
    if (q->holds_ticket) {
        ward_breaker_done(rc->breaker, q->ticket, breaker_outcome(err, res->status));
        q->holds_ticket = false;
    }
    if (q->holds_pick) {
        enum ward_balancer_outcome bo = balancer_outcome(err, res->status);
        ward_balancer_done(rc->disc->balancer, &q->pick, bo);
        q->holds_pick = false;
        if (bo == WARD_BALANCER_FAILURE_5XX || bo == WARD_BALANCER_FAILURE_TRANSPORT)
            memcpy(q->avoid, q->pick.id, sizeof q->avoid);
        else
            q->avoid[0] = '\0';
    }
    q->sent_any = q->sent_any || res->sent;
    q->err = err;
    if (err == WARD_ERR_OK && res->status >= 400)
        q->err = WARD_ERR_HTTP_STATUS;
    retry_outcome(q, err, res, &o);
    now = ward_clock_now(rc->clock);
    /* the next attempt needs 1 ms left to be sent at all */
    v = ward_retry_plan(&rc->retry, &o, &q->retry, now, sub_sat(q->deadline, WARD_NS_PER_MS),
                        &delay);
    /* the call's own time ran out with the attempt: that is how the call ends */
    if (v == WARD_RETRY_STOP_DEADLINE || (timed_out && q->attempt_deadline >= q->deadline))
        q->err = WARD_ERR_DEADLINE;
    if (v != WARD_RETRY_YES)
        return WARD__RSTEP_DONE;
    if (rc->budget != NULL && ward_budget_try_withdraw(rc->budget) != WARD_ERR_OK) {
        q->err = WARD_ERR_BUDGET_EXHAUSTED;
        return WARD__RSTEP_DONE;
    }
    ward_counter_inc(atomic_load_explicit(&rc->m_retries, memory_order_acquire));
    *wait_ns = delay;
    return WARD__RSTEP_WAIT;
}

enum ward_err ward__rcall_finish(struct ward__rcall *q)
{
    struct ward_rclient *rc = q->rc;

    if (q->holds_ticket)
        ward_breaker_done(rc->breaker, q->ticket, WARD_BREAKER_EXCLUDED);
    if (q->holds_pick)
        ward_balancer_done(rc->disc->balancer, &q->pick, WARD_BALANCER_EXCLUDED);
    q->holds_pick = false;
    if (q->holds_slot)
        ward_bulkhead_release(rc->bulkhead);
    q->holds_ticket = false;
    q->holds_slot = false;
    free(q->url);
    q->url = NULL;
    if (rc != NULL)
        ward_counter_inc(
            atomic_load_explicit(&rc->m_calls[result_of(q->err)], memory_order_acquire));
    return q->err;
}
