/* idempotency.h — Idempotency-Key for the POSTs that create or move money (DESIGN.md §4):
 * the first response is stored with a fingerprint of the request (SHA-256 of method,
 * path and body) in the same transaction as the effect, and replayed for the same key and
 * body; the same key with another body is 422, the same key while the first request is
 * still running is 409, a missing key where one is required is 400; keys are deleted
 * after their TTL (24 h by default) by a periodic sweep. */
#ifndef WARD_IDEMPOTENCY_H
#define WARD_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ward/clock.h>
#include <ward/err.h>
#include <ward/http.h>
#include <ward/store.h>

struct ward_idem;

/* The table, for the service's own migrations (one text serves both backends):
 *     {2, WARD_IDEM_SCHEMA, NULL},
 * Services sharing a database share the table (their scopes keep their keys apart): the
 * second one's migration finds it there. */
#define WARD_IDEM_SCHEMA                                                                  \
    "CREATE TABLE IF NOT EXISTS ward_idempotency ("                                       \
    " scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"                \
    " state TEXT NOT NULL CHECK (state IN ('running', 'done')),"                          \
    " owner TEXT NOT NULL, locked_until BIGINT NOT NULL,"                                 \
    " status INTEGER, content_type TEXT, location TEXT, body TEXT,"                       \
    " request_id TEXT, created_at TEXT NOT NULL, expires_at BIGINT NOT NULL,"            \
    " PRIMARY KEY (scope, key));"                                                         \
    "CREATE INDEX IF NOT EXISTS ward_idempotency_expiry ON ward_idempotency (expires_at);"

/* The longest key accepted (Stripe's limit). */
#define WARD_IDEM_KEY_MAX 255

struct ward_idem_settings {
    const char *scope;      /* whose keys (the service's name: services sharing a
                             * database keep apart); required; copied */
    int64_t ttl;            /* ns a key lives; >= 1 s; default 24 h */
    int64_t lease;          /* ns a running request holds its key; a request that crashed
                             * frees it after this; default 60 s */
    int64_t sweep_interval; /* ns between sweeps of expired keys; 0 = no sweep thread;
                             * default 1 h */
    const struct ward_clock *wall; /* unix time for expiry, in ns; NULL = the system's
                                    * CLOCK_REALTIME (a fake clock in tests) */
    struct ward_log *log;   /* borrowed; NULL = silent */
};

/* What a claim found. */
enum ward_idem_verdict {
    WARD_IDEM_PROCEED = 0, /* the key is ours: do the work, then complete (or release) */
    WARD_IDEM_REPLAY,      /* done before with this request: answer the stored response */
    WARD_IDEM_MISMATCH,    /* done or running with another request: 422 */
    WARD_IDEM_RUNNING,     /* the first request with this key is still running: 409 */
    WARD_IDEM_MISSING,     /* no key where one is required: 400 */
    WARD_IDEM_INVALID,     /* a key that is empty, too long or not printable ASCII: 400 */
};

/* A claim on a key, filled by ward_idem_claim; release its strings with
 * ward_idem_claim_fini. */
struct ward_idem_claim {
    enum ward_idem_verdict verdict;
    char key[WARD_IDEM_KEY_MAX + 1];
    char owner[40]; /* this request's token while it holds the key */
    /* REPLAY: the stored response */
    int status;
    char *content_type, *location, *body;
    size_t body_len;
};

void ward_idem_settings_default(struct ward_idem_settings *s);

/* An idempotency store on st (whose migrations created WARD_IDEM_SCHEMA), sweeping every
 * sweep_interval on a thread of its own. INVAL, NOMEM, SYSTEM. */
WARD_MUST_CHECK enum ward_err ward_idem_new(struct ward_store *st,
                                            const struct ward_idem_settings *s,
                                            struct ward_idem **out);

/* Stops the sweep and frees. NULL is a no-op. */
void ward_idem_free(struct ward_idem *im);

/* Claims key (NULL: MISSING when required, else PROCEED with no key held) for a request,
 * in a transaction of its own: a new key is recorded as running, owned by this request
 * for lease ns. A running key whose lease ran out (its request crashed: its effect never
 * committed, since completing is part of the effect's transaction) is taken over. The
 * fingerprint is SHA-256 over method, path and body. Errors of the store (STORE_DOWN...),
 * NOMEM; the verdict is in c either way. Thread-safe. */
WARD_MUST_CHECK enum ward_err ward_idem_claim(struct ward_idem *im, const char *key,
                                              bool required, const char *method,
                                              const char *path, const char *body,
                                              size_t body_len, const char *request_id,
                                              struct ward_idem_claim *c);

/* The same claim inside tx, the effect's own transaction, for an effect quick enough to
 * run while the database's write lock is held: claim, effect and stored response commit
 * together, in one commit instead of two, and nobody ever sees the key running. The work
 * goes on only on PROCEED (and then completes the key in tx, or leaves it running for
 * ward_idem_fail / ward_idem_release after the commit); any other verdict is answered
 * with ward_idem_respond once the transaction ended. c must be zeroed before the
 * transaction's first run (a run again resets it); errors as ward_tx_exec's, SYSTEM. */
WARD_MUST_CHECK enum ward_err ward_idem_claim_in(struct ward_tx *tx, struct ward_idem *im,
                                                 const char *key, bool required,
                                                 const char *method, const char *path,
                                                 const char *body, size_t body_len,
                                                 const char *request_id,
                                                 struct ward_idem_claim *c);

/* Records the response of a PROCEED claim inside tx — the transaction of the effect, so
 * that the effect and its stored response commit together or not at all. CONFLICT when
 * the key is no longer this request's (its lease ran out and another took it over): roll
 * the effect back. A claim without a key: OK, nothing stored. */
WARD_MUST_CHECK enum ward_err ward_idem_complete(struct ward_tx *tx, struct ward_idem *im,
                                                 const struct ward_idem_claim *c, int status,
                                                 const char *content_type,
                                                 const char *location, const char *body,
                                                 size_t body_len);

/* The same in a transaction of its own: for a definite answer without an effect (a 4xx
 * found after the claim, say), so that it is replayed too. */
WARD_MUST_CHECK enum ward_err ward_idem_finish(struct ward_idem *im,
                                               const struct ward_idem_claim *c, int status,
                                               const char *content_type, const char *body,
                                               size_t body_len);

/* Gives the key up (the request failed with no definite answer, a 5xx): deleted if still
 * this request's, so that a retry runs anew. */
WARD_MUST_CHECK enum ward_err ward_idem_release(struct ward_idem *im,
                                                const struct ward_idem_claim *c);

/* Answers req for a claim that is not PROCEED: the stored response with
 * Idempotent-Replayed: true, or the problem (400 idempotency-key-missing or -invalid,
 * 422 idempotency-key-reused, 409 idempotency-in-flight with Retry-After: 1). */
void ward_idem_respond(struct ward_req *req, const struct ward_idem_claim *c);

void ward_idem_claim_fini(struct ward_idem_claim *c);

/* --- the same for a handler, in three calls --- */

/* Claims the request's Idempotency-Key header over its method, path and body. true: go on
 * (c holds the claim; it may hold no key when not required). false: req is answered — a
 * replay, a 400/409/422, or the store's 503 — and c is finished. */
bool ward_idem_begin(struct ward_idem *im, struct ward_req *req, bool required,
                     struct ward_idem_claim *c);

/* ward_idem_begin's claim in the effect's transaction (ward_idem_claim_in over the
 * request's Idempotency-Key, method, path and body). After the transaction: a verdict
 * other than PROCEED is answered with ward_idem_respond; a failed transaction left no key
 * behind (ward_store_respond_error, nothing to release). */
WARD_MUST_CHECK enum ward_err ward_idem_begin_in(struct ward_tx *tx, struct ward_idem *im,
                                                 struct ward_req *req, bool required,
                                                 struct ward_idem_claim *c);

/* Answers the definite problem p (taken) and stores it for the key, so that a retry gets
 * the same answer; a key that cannot record it is released (a retry then computes the
 * same answer anew). A NULL p answers a plain 500 and releases the key. */
void ward_idem_fail(struct ward_idem *im, struct ward_req *req, const struct ward_idem_claim *c,
                    struct ward_problem *p);

/* Answers a store failure of the effect's transaction: CONFLICT (the key was taken over
 * after our lease ran out) is 409 idempotency-in-flight with Retry-After; anything else
 * releases the key (no answer was stored, a retry runs anew) and is
 * ward_store_respond_error's 503/409/500. */
void ward_idem_store_failed(struct ward_idem *im, struct ward_req *req,
                            const struct ward_idem_claim *c, enum ward_err err);

/* Deletes the keys whose TTL is over; *deleted (may be NULL) gets how many. */
WARD_MUST_CHECK enum ward_err ward_idem_sweep(struct ward_idem *im, int64_t *deleted);

#endif
