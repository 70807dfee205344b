/* rclient_int.h — the resilient client's object and its policy as non-blocking steps, so
 * that the blocking loop (rclient.c) and an event-driven one run the same decisions. */
#ifndef WARD_LIB_RCLIENT_INT_H
#define WARD_LIB_RCLIENT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ward/rclient.h>

/* Index of a call's result in ward_client_calls_total; see ward__rclient_result. */
enum ward__rresult {
    WARD__RRES_OK,
    WARD__RRES_HTTP_STATUS,
    WARD__RRES_OPEN,
    WARD__RRES_TOO_MANY,
    WARD__RRES_RATE_LIMITED,
    WARD__RRES_BULKHEAD_FULL,
    WARD__RRES_BUDGET,
    WARD__RRES_DEADLINE,
    WARD__RRES_CONNECT,
    WARD__RRES_TRANSPORT,
    WARD__RRES_TIMEOUT,
    WARD__RRES_TOO_LARGE,
    WARD__RRES_UNAVAILABLE,
    WARD__RRES_ERROR,
    WARD__RRES_COUNT
};

struct ward__reg_watch;

/* Discovery: the service's watch and the balancer kept in step with it. */
struct ward__rdisc {
    struct ward__reg_watch *watch;
    struct ward_balancer *balancer;
    bool owns_balancer;          /* false: discovery.shared_balancer, someone else's */
    const char *scheme;          /* "http://" or "https://" */
    pthread_mutex_t sync_lock;   /* one thread at a time brings the balancer up to date */
    _Atomic uint64_t synced;     /* the watch generation the balancer holds */
};

struct ward_rclient {
    char *name;
    char *base_url;   /* without a trailing '/' */
    size_t base_len;
    struct ward_httpc *httpc;
    bool owns_httpc;
    bool owns_breaker; /* false: settings.breaker.shared, someone else's */
    const struct ward_clock *clock;
    int64_t call_timeout;
    int64_t attempt_timeout; /* 0: the call's deadline */
    bool limiter_wait;
    struct ward_retry_policy retry; /* max_attempts 1 when retries are off */
    struct ward_bulkhead *bulkhead; /* each NULL when its layer is off */
    struct ward_limiter *limiter;
    struct ward_breaker *breaker;
    struct ward_budget *budget;
    struct ward__rdisc *disc;       /* NULL without discovery */
    /* Set once by ward_rclient_export; counting into NULL is a no-op. */
    _Atomic(struct ward_metric *) m_calls[WARD__RRES_COUNT];
    _Atomic(struct ward_metric *) m_retries;
    atomic_bool exported;
};

/* What the caller of a step does next. */
enum ward__rstep {
    WARD__RSTEP_SEND, /* send the attempt the step filled in */
    WARD__RSTEP_WAIT, /* wait *wait_ns on rc's clock, then call ward__rcall_attempt */
    WARD__RSTEP_DONE  /* call ward__rcall_finish */
};

/* One call in flight: a value the driving loop keeps (on its stack, or in the event
 * form's per-call state). Its fields are the policy's. */
struct ward__rcall {
    struct ward_rclient *rc;
    const struct ward_http_call *call; /* the caller's, borrowed for the whole call */
    char *url;                         /* base_url (or the instance) + call->url, owned */
    struct ward_balancer_pick pick;    /* discovery: the attempt's instance */
    bool holds_pick;                   /* a balancer outcome still owed */
    char avoid[WARD_BALANCER_ID_MAX];  /* discovery: the instance that just failed */
    int64_t deadline;                  /* the call's, on rc's clock */
    bool deadline_ours;                /* it is rc's call timeout, not the caller's */
    int64_t attempt_deadline;          /* the attempt in flight's */
    bool has_key;                      /* the request carries an Idempotency-Key */
    bool sent_any;                     /* some attempt may have reached the dependency */
    bool holds_slot;                   /* a bulkhead slot to give back */
    bool holds_ticket;                 /* a breaker outcome still owed */
    struct ward_breaker_ticket ticket;
    struct ward_retry_state retry;
    enum ward_err err; /* the result so far (DONE: the final one) */
};

/* Admits a call: works out the deadline, resolves the URL, takes a bulkhead slot and a
 * limiter token and deposits in the retry budget. SEND is never returned: WAIT (the
 * limiter's delay, possibly 0) leads to the first ward__rcall_attempt; DONE means
 * refused (q->err). q is filled in whatever happens; finish it in every case. */
enum ward__rstep ward__rcall_start(struct ward__rcall *q, struct ward_rclient *rc,
                                   const struct ward_http_call *call, int64_t *wait_ns);

/* Starts an attempt: checks the deadline, asks the breaker, picks an instance (discovery),
 * and fills *out with the request to send (borrowing q's strings). SEND; DONE (q->err);
 * or, when there was no instance to pick, what its outcome leads to (WAIT *wait_ns). */
enum ward__rstep ward__rcall_attempt(struct ward__rcall *q, struct ward_http_call *out,
                                     int64_t *wait_ns);

/* Takes the attempt's outcome (what ward_httpc_do returned and its result): reports it to
 * the breaker, asks the retry policy and the budget. WAIT (*wait_ns) before the next
 * ward__rcall_attempt, or DONE (q->err). The result stays the caller's. */
enum ward__rstep ward__rcall_outcome(struct ward__rcall *q, enum ward_err err,
                                     const struct ward_http_result *res, int64_t *wait_ns);

/* Ends the call: settles an outcome still owed to the breaker (as excluded), gives back
 * the bulkhead slot, frees the URL, counts the result. Returns the final error. */
enum ward_err ward__rcall_finish(struct ward__rcall *q);

/* base_url + path into a new string (*out, the caller frees it). INVAL when path does
 * not start with '/'; NOMEM. */
enum ward_err ward__rclient_url(const struct ward_rclient *rc, const char *path, char **out);

/* rclient_discovery.c: follows s's service in its registry with a new balancer (rc->disc);
 * INVAL, NOMEM, SYSTEM. Frees it (NULL: no-op). */
enum ward_err ward__rdisc_new(struct ward_rclient *rc, const struct ward_rclient_settings *s);
void ward__rdisc_free(struct ward__rdisc *d);

/* Picks an instance for an attempt (avoiding `avoid` when another is available) and builds
 * its URL for path into *url (the caller frees it). UNAVAILABLE when there is none; NOMEM
 * (the pick is then given back). */
enum ward_err ward__rdisc_pick(struct ward__rdisc *d, const char *avoid, const char *path,
                               struct ward_balancer_pick *pick, char **url);

/* The metrics label of a final error. */
const char *ward__rclient_result_name(enum ward__rresult r);

#endif
