/* pay.h — the internals of payment-service: the payment saga (DESIGN.md §6) recorded in
 * the database, driven by a pool of workers, answered within the caller's deadline and
 * resumed by recovery after a crash. */
#ifndef PAY_PAY_H
#define PAY_PAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <ward/err.h>
#include <ward/http.h>
#include <ward/id.h>
#include <ward/idempotency.h>
#include <ward/rclient.h>
#include <ward/registry.h>
#include <ward/service.h>
#include <ward/store.h>

#define PAY_ID_PREFIX "pay"
#define PAY_REF_MAX 64   /* customer_id, and the ids other services give us */
#define PAY_TEXT_MAX 500 /* description, failure_reason */

/* The columns every query that reads payments selects, in pay_row_read's order. */
#define PAY_COLUMNS                                                                       \
    "seq, id, customer_id, amount, currency, description, status, failure_reason, step, " \
    "invoice_id, ledger_transaction_id, created_at, created_request_id, completed_at, "   \
    "failed_at, owner, lease_until, attempts, next_attempt_at, sent, calling"

extern const struct ward_migration pay_migrations[];
extern const size_t pay_n_migrations;

/* One payments row. Strings are "" where the column is NULL, with has_* telling. */
struct pay_row {
    int64_t seq;
    char id[WARD_ID_MAX];
    char customer_id[PAY_REF_MAX + 1];
    int64_t amount;
    char currency[8];
    char description[PAY_TEXT_MAX + 1];
    char status[16];                    /* pending | completed | failed */
    char failure_reason[PAY_TEXT_MAX + 1];
    bool has_failure_reason;
    char step[16];                      /* invoice | ledger | pay | void | done */
    char invoice_id[PAY_REF_MAX + 1];
    char ledger_transaction_id[PAY_REF_MAX + 1];
    char created_at[WARD_RFC3339_SIZE];
    char created_request_id[256];
    char completed_at[WARD_RFC3339_SIZE];
    char failed_at[WARD_RFC3339_SIZE];
    char owner[WARD_ID_MAX];
    int64_t lease_until;     /* unix ms */
    int64_t attempts;        /* failed rounds of the current step */
    int64_t next_attempt_at; /* unix ms */
    bool sent;    /* an earlier round of the current step may have reached the service */
    bool calling; /* a round of the current step started and recorded no outcome */
};

/* Reads payment id in tx into *row: *found false when there is none. */
WARD_MUST_CHECK enum ward_err pay_row_load(struct ward_tx *tx, const char *id,
                                           struct pay_row *row, bool *found);
/* The current row of r (selected with PAY_COLUMNS) into *row. */
void pay_row_read(const struct ward_rows *r, struct pay_row *row);
/* Appends an entry to the payment's step log (detail may be NULL). */
WARD_MUST_CHECK enum ward_err pay_log_step(struct ward_tx *tx, const char *id, const char *step,
                                           const char *event, const char *detail);
/* The payment resource (with its step history, read in tx) as JSON: *out NULL on NOMEM. */
WARD_MUST_CHECK enum ward_err pay_resource(struct ward_tx *tx, const struct pay_row *row,
                                           json_t **out);
/* Wall-clock unix milliseconds, and RFC 3339 of now. */
int64_t pay_now_ms(void);
void pay_now_text(char buf[WARD_RFC3339_SIZE]);

/* --- the worker queue (workers.c) --- */
struct pay_ctx;
struct pay_item;
struct pay_queue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pay_item *head, *tail;
    struct pay_item **active; /* hash set of ids queued or being driven */
    size_t buckets;
    bool closing;
    pthread_t *threads;
    size_t n_threads;
};
WARD_MUST_CHECK enum ward_err pay_workers_start(struct pay_ctx *ctx);
/* Queues payment id unless it is queued or being driven already. */
void pay_workers_submit(struct pay_ctx *ctx, const char *id);
/* Whether id is queued or being driven here. */
bool pay_workers_active(struct pay_ctx *ctx, const char *id);
/* Stops taking work, lets each worker end the step it runs, joins them. */
void pay_workers_stop(struct pay_ctx *ctx);

/* --- the saga (saga.c) --- */
/* Drives payment id, owned by this instance, step by step until it ends, has to wait
 * (an ambiguous outcome: retried later by recovery), or is no longer ours. */
void pay_saga_drive(struct pay_ctx *ctx, const char *id);

/* --- requests waiting for their answer (waiters.c) --- */
struct pay_waiter;
struct pay_waiters {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct pay_waiter *list;
    bool closing; /* shutdown: answer everything now */
    bool stop;
    pthread_t thread;
    bool started;
};
WARD_MUST_CHECK enum ward_err pay_waiters_start(struct pay_ctx *ctx);
/* req (suspended) waits for payment id until its deadline minus a margin; then it is
 * answered with the payment as it is. Answers at once when that time already passed. */
void pay_waiters_add(struct pay_ctx *ctx, struct ward_req *req, const char *id);
/* The saga of id ended: answers the requests waiting for it. */
void pay_waiters_done(struct pay_ctx *ctx, const char *id);
/* Graceful shutdown began: every waiting request is answered now (202 while pending). */
void pay_waiters_flush(struct pay_ctx *ctx);
void pay_waiters_stop(struct pay_ctx *ctx);
/* Answers req with payment id's current state: 201 when it ended, 202 while pending
 * (both with Location), 404 when there is none; replayed adds Idempotent-Replayed. */
void pay_answer(struct pay_ctx *ctx, struct ward_req *req, const char *id, bool replayed);
/* Reads payment id as the resource into *doc (caller owns; NULL when there is none);
 * *pending tells its state. The store's error, or NOMEM. */
WARD_MUST_CHECK enum ward_err pay_read(struct pay_ctx *ctx, const char *id, json_t **doc,
                                       bool *pending);

/* --- recovery (recovery.c) --- */
struct pay_recovery {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    pthread_t thread;
    bool started;
};
WARD_MUST_CHECK enum ward_err pay_recovery_start(struct pay_ctx *ctx);
void pay_recovery_stop(struct pay_ctx *ctx);

/* --- the ledger accounts (accounts.c) --- */
struct pay_account_set {
    char currency[8];
    char cash[PAY_REF_MAX + 1], revenue[PAY_REF_MAX + 1];
};
struct pay_accounts {
    pthread_mutex_t lock;
    struct pay_account_set *sets;
    size_t len, cap;
};

/* How a downstream step ended (DESIGN.md §6's give-up rule). */
enum pay_verdict {
    PAY_DONE,  /* it happened: a 2xx */
    PAY_GIVE_UP, /* definitely not: a 4xx, or certainly never reached the service */
    PAY_AGAIN, /* ambiguous, or "try again": retried later with the same key */
};
struct pay_outcome {
    enum pay_verdict verdict;
    bool sent;                   /* the request may have reached the service */
    bool unreached;              /* PAY_GIVE_UP because it certainly never reached it */
    char result_id[PAY_REF_MAX + 1]; /* PAY_DONE: the id the answer named */
    char detail[PAY_TEXT_MAX + 1];
};

/* Finds (or creates, once, in accounting-service) the cash and revenue accounts of
 * currency. PAY_DONE fills *set; otherwise out tells why. */
void pay_accounts_get(struct pay_ctx *ctx, const char *currency, const char *request_id,
                      struct pay_account_set *set, struct pay_outcome *out);
void pay_accounts_fini(struct pay_accounts *a);

/* --- downstream calls (clients.c) --- */
WARD_MUST_CHECK enum ward_err pay_clients_new(struct pay_ctx *ctx);
void pay_clients_free(struct pay_ctx *ctx);
/* POSTs body to path through rc with Idempotency-Key key and classifies the answer;
 * on PAY_DONE result_id gets the answer's "id" and *answer (may be NULL) the body. */
void pay_call(struct pay_ctx *ctx, struct ward_rclient *rc, const char *path, json_t *body,
              const char *key, const char *request_id, struct pay_outcome *out,
              json_t **answer);

/* The service's state. */
struct pay_ctx {
    struct ward_service *svc;
    struct ward_store *store;
    struct ward_idem *idem;
    struct ward_log *log;
    char owner[WARD_ID_MAX]; /* this instance, in payments.owner */
    /* flags */
    int64_t workers, ledger_rate, ledger_burst;
    int64_t step_timeout, recovery_interval, lease, retry_max;
    int64_t breaker_timeout; /* how long invoice-service's breaker stays open */
    const char *invoice_addr, *accounting_addr;
    /* parts */
    struct ward_registry *registry;
    struct ward_rclient *invoices, *ledger;
    struct pay_queue queue;
    struct pay_waiters waiters;
    struct pay_recovery recovery;
    struct pay_accounts accounts;
    atomic_bool stopping;
};

/* The endpoints; arg is the struct pay_ctx. */
void pay_payments_post(struct ward_req *req, void *arg); /* POST /payments */
void pay_payments_get(struct ward_req *req, void *arg);  /* GET /payments/{id} */
void pay_payments_list(struct ward_req *req, void *arg); /* GET /payments */

#endif
