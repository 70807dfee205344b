/* idempotency.c — Idempotency-Key on top of the store: a claim in a transaction of its
 * own marks the key running for this request, the response is stored in the effect's own
 * transaction, and a sweep thread deletes expired keys. The fingerprint is SHA-256
 * (OpenSSL's libcrypto, already loaded by libcurl) over method, path and body. */
#include <ward/idempotency.h>

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <ward/log.h>
#include <ward/problem.h>
#include <ward/thread.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

struct ward_idem {
    struct ward_store *store;
    struct ward_idem_settings s;
    char *scope;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* CLOCK_MONOTONIC */
    bool stopping, started;
    pthread_t sweeper;
};

void ward_idem_settings_default(struct ward_idem_settings *s)
{
    *s = (struct ward_idem_settings){
        .ttl = 24 * 3600 * NS_PER_S,
        .lease = 60 * NS_PER_S,
        .sweep_interval = 3600 * NS_PER_S,
    };
}

/* Unix time in ms: the settings' clock (tests) or the system's. */
static int64_t wall_ms(const struct ward_idem *im)
{
    if (im->s.wall != NULL)
        return ward_clock_now(im->s.wall) / NS_PER_MS;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / NS_PER_MS;
}


/* ---- the sweep ---------------------------------------------------------------------- */

static struct ward_query q_sweep =
    WARD_QUERY("DELETE FROM ward_idempotency WHERE scope = $1 AND expires_at <= $2");

struct sweep {
    struct ward_idem *im;
    int64_t deleted;
};

static enum ward_err sweep_fn(struct ward_tx *tx, void *arg)
{
    struct sweep *sw = arg;
    enum ward_err err = ward_tx_exec(
        tx, &q_sweep,
        (struct ward_param[]){WARD_P_TEXT(sw->im->scope), WARD_P_INT(wall_ms(sw->im))}, 2, NULL);
    sw->deleted = err == WARD_ERR_OK ? ward_tx_changes(tx) : 0;
    return err;
}

enum ward_err ward_idem_sweep(struct ward_idem *im, int64_t *deleted)
{
    struct sweep sw = {.im = im};
    if (im == NULL)
        return WARD_ERR_INVAL;
    enum ward_err err = ward_store_tx(im->store, WARD_TX_WRITE, sweep_fn, &sw);
    if (deleted != NULL)
        *deleted = sw.deleted;
    return err;
}

static void *sweep_main(void *arg)
{
    struct ward_idem *im = arg;
    pthread_mutex_lock(&im->lock);
    while (!im->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t t = until.tv_nsec + im->s.sweep_interval;
        until.tv_sec += (time_t)(t / NS_PER_S);
        until.tv_nsec = (long)(t % NS_PER_S);
        int rc = 0;
        while (!im->stopping && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&im->wake, &im->lock, &until);
        if (im->stopping)
            break;
        pthread_mutex_unlock(&im->lock);
        int64_t n = 0;
        enum ward_err err = ward_idem_sweep(im, &n);
        if (err != WARD_ERR_OK)
            WARD_WARN(im->s.log, NULL, "idempotency sweep failed", WARD_S("error", ward_strerror(err)));
        else if (n > 0)
            WARD_INFO(im->s.log, NULL, "idempotency keys expired", WARD_I("deleted", n));
        pthread_mutex_lock(&im->lock);
    }
    pthread_mutex_unlock(&im->lock);
    return NULL;
}

enum ward_err ward_idem_new(struct ward_store *st, const struct ward_idem_settings *s,
                            struct ward_idem **out)
{
    if (out == NULL)
        return WARD_ERR_INVAL;
    *out = NULL;
    if (st == NULL || s == NULL || s->scope == NULL || s->scope[0] == '\0' ||
        s->ttl < NS_PER_S || s->lease < NS_PER_MS || s->sweep_interval < 0)
        return WARD_ERR_INVAL;
    struct ward_idem *im = calloc(1, sizeof *im);
    if (im == NULL)
        return WARD_ERR_NOMEM;
    im->store = st;
    im->s = *s;
    im->scope = strdup(s->scope);
    im->s.scope = im->scope;
    if (im->scope == NULL) {
        free(im);
        return WARD_ERR_NOMEM;
    }
    if (pthread_mutex_init(&im->lock, NULL) != 0 || ward_cond_init_monotonic(&im->wake) != WARD_ERR_OK) {
        free(im->scope);
        free(im);
        return WARD_ERR_SYSTEM;
    }
    if (s->sweep_interval > 0) {
        enum ward_err err = ward_thread_start(&im->sweeper, sweep_main, im);
        if (err != WARD_ERR_OK) {
            ward_idem_free(im);
            return err;
        }
        im->started = true;
    }
    *out = im;
    return WARD_ERR_OK;
}

void ward_idem_free(struct ward_idem *im)
{
    if (im == NULL)
        return;
    pthread_mutex_lock(&im->lock);
    im->stopping = true;
    pthread_cond_broadcast(&im->wake);
    pthread_mutex_unlock(&im->lock);
    if (im->started)
        pthread_join(im->sweeper, NULL);
    pthread_cond_destroy(&im->wake);
    pthread_mutex_destroy(&im->lock);
    free(im->scope);
    free(im);
}

/* ---- claims ------------------------------------------------------------------------- */

/* SHA-256 of method, path and body, each length-prefixed so that no two requests share
 * an input, as 64 hex digits. */
static bool fingerprint(const char *method, const char *path, const char *body, size_t len,
                        char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    char head[64];
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    const char *parts[3] = {method, path, body != NULL ? body : ""};
    size_t lens[3] = {strlen(method), strlen(path), body != NULL ? len : 0};
    for (int i = 0; ok && i < 3; i++) {
        int n = snprintf(head, sizeof head, "%zu:", lens[i]);
        ok = EVP_DigestUpdate(ctx, head, (size_t)n) == 1 &&
             EVP_DigestUpdate(ctx, parts[i], lens[i]) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 32;
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; ok && i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return ok;
}

/* A printable-ASCII key of 1..WARD_IDEM_KEY_MAX bytes (Stripe's rule, UUIDs fit). */
static bool key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > WARD_IDEM_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

static struct ward_query q_find = WARD_QUERY(
    "SELECT fingerprint, state, owner, locked_until, expires_at, status, content_type, "
    "location, body FROM ward_idempotency WHERE scope = $1 AND key = $2");
static struct ward_query q_insert = WARD_QUERY(
    "INSERT INTO ward_idempotency (scope, key, fingerprint, state, owner, locked_until, "
    "request_id, created_at, expires_at) VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8)");
static struct ward_query q_take_over = WARD_QUERY(
    "UPDATE ward_idempotency SET owner = $3, locked_until = $4, request_id = $5 "
    "WHERE scope = $1 AND key = $2 AND owner = $6 AND state = 'running'");
static struct ward_query q_forget =
    WARD_QUERY("DELETE FROM ward_idempotency WHERE scope = $1 AND key = $2");

struct claim_work {
    struct ward_idem *im;
    struct ward_idem_claim *c;
    const char *fp, *request_id;
};

static char *dup_col(struct ward_rows *rows, size_t col)
{
    const char *t = ward_rows_text(rows, col);
    return t != NULL ? strdup(t) : NULL;
}

/* Inserts a running row for c; a concurrent claim that won the insert makes us look again. */
static enum ward_err insert_running(struct ward_tx *tx, struct claim_work *w, int64_t now)
{
    char created[WARD_RFC3339_SIZE];
    ward_clock_rfc3339(now * NS_PER_MS, created, sizeof created);
    enum ward_err err = ward_tx_exec(
        tx, &q_insert,
        (struct ward_param[]){WARD_P_TEXT(w->im->scope), WARD_P_TEXT(w->c->key),
                              WARD_P_TEXT(w->fp), WARD_P_TEXT(w->c->owner),
                              WARD_P_INT(now + w->im->s.lease / NS_PER_MS),
                              WARD_P_TEXT_OR_NULL(w->request_id), WARD_P_TEXT(created),
                              WARD_P_INT(now + w->im->s.ttl / NS_PER_MS)},
        8, NULL);
    if (err == WARD_ERR_CONSTRAINT)
        return WARD_ERR_RETRY; /* another request inserted the key first: read it */
    if (err == WARD_ERR_OK)
        w->c->verdict = WARD_IDEM_PROCEED;
    return err;
}

static enum ward_err claim_fn(struct ward_tx *tx, void *arg)
{
    struct claim_work *w = arg;
    struct ward_idem_claim *c = w->c;
    struct ward_rows *rows = NULL;
    int64_t now = wall_ms(w->im);
    const struct ward_param key[] = {WARD_P_TEXT(w->im->scope), WARD_P_TEXT(c->key)};
    free(c->content_type);
    free(c->location);
    free(c->body);
    c->content_type = c->location = c->body = NULL; /* a retried run starts clean */
    enum ward_err err = ward_tx_exec(tx, &q_find, key, 2, &rows);
    if (err != WARD_ERR_OK)
        return err;
    if (!ward_rows_next(rows)) {
        ward_rows_free(rows);
        return insert_running(tx, w, now);
    }
    bool same = strcmp(ward_rows_text(rows, 0), w->fp) == 0;
    bool done = strcmp(ward_rows_text(rows, 1), "done") == 0;
    char old_owner[40];
    snprintf(old_owner, sizeof old_owner, "%s", ward_rows_text(rows, 2));
    int64_t locked_until = ward_rows_int64(rows, 3), expires_at = ward_rows_int64(rows, 4);
    if (expires_at <= now) { /* expired, not yet swept: as if absent */
        ward_rows_free(rows);
        err = ward_tx_exec(tx, &q_forget, key, 2, NULL);
        return err == WARD_ERR_OK ? insert_running(tx, w, now) : err;
    }
    if (!same) {
        c->verdict = WARD_IDEM_MISMATCH;
    } else if (done) {
        c->verdict = WARD_IDEM_REPLAY;
        c->status = (int)ward_rows_int64(rows, 5);
        c->content_type = dup_col(rows, 6);
        c->location = dup_col(rows, 7);
        c->body = dup_col(rows, 8);
        c->body_len = c->body != NULL ? strlen(c->body) : 0;
        if ((c->body == NULL && !ward_rows_is_null(rows, 8)) ||
            (c->content_type == NULL && !ward_rows_is_null(rows, 6)) ||
            (c->location == NULL && !ward_rows_is_null(rows, 7)))
            err = WARD_ERR_NOMEM;
    } else if (locked_until > now) {
        c->verdict = WARD_IDEM_RUNNING;
    } else {
        /* its request died before completing, so its effect never committed: ours now */
        err = ward_tx_exec(tx, &q_take_over,
                           (struct ward_param[]){key[0], key[1], WARD_P_TEXT(c->owner),
                                                 WARD_P_INT(now + w->im->s.lease / NS_PER_MS),
                                                 WARD_P_TEXT_OR_NULL(w->request_id),
                                                 WARD_P_TEXT(old_owner)},
                           6, NULL);
        if (err == WARD_ERR_OK && ward_tx_changes(tx) != 1)
            err = WARD_ERR_RETRY;
        if (err == WARD_ERR_OK)
            c->verdict = WARD_IDEM_PROCEED;
    }
    ward_rows_free(rows);
    return err;
}

/* A random owner token: 32 hex digits. */
static bool new_owner(char out[40])
{
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return false;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return true;
}

/* What both claims do before the database: the verdicts a key alone decides, the
 * fingerprint and an owner token. *go: the database has to be asked. */
static enum ward_err claim_prepare(struct ward_idem *im, const char *key, bool required,
                                   const char *method, const char *path, const char *body,
                                   size_t body_len, struct ward_idem_claim *c, char fp[65],
                                   bool *go)
{
    *go = false;
    if (c == NULL)
        return WARD_ERR_INVAL;
    ward_idem_claim_fini(c); /* a transaction run again starts clean */
    *c = (struct ward_idem_claim){0};
    if (im == NULL || method == NULL || path == NULL)
        return WARD_ERR_INVAL;
    if (key == NULL) {
        c->verdict = required ? WARD_IDEM_MISSING : WARD_IDEM_PROCEED;
        return WARD_ERR_OK;
    }
    if (!key_ok(key)) {
        c->verdict = WARD_IDEM_INVALID;
        return WARD_ERR_OK;
    }
    snprintf(c->key, sizeof c->key, "%s", key);
    if (!fingerprint(method, path, body, body_len, fp) || !new_owner(c->owner))
        return WARD_ERR_SYSTEM;
    *go = true;
    return WARD_ERR_OK;
}

enum ward_err ward_idem_claim(struct ward_idem *im, const char *key, bool required,
                              const char *method, const char *path, const char *body,
                              size_t body_len, const char *request_id,
                              struct ward_idem_claim *c)
{
    char fp[65];
    bool go;
    if (c != NULL)
        *c = (struct ward_idem_claim){0};
    enum ward_err err = claim_prepare(im, key, required, method, path, body, body_len, c, fp, &go);
    if (err != WARD_ERR_OK || !go)
        return err;
    struct claim_work w = {.im = im, .c = c, .fp = fp, .request_id = request_id};
    err = ward_store_tx(im->store, WARD_TX_WRITE, claim_fn, &w);
    if (err != WARD_ERR_OK)
        ward_idem_claim_fini(c);
    return err;
}

enum ward_err ward_idem_claim_in(struct ward_tx *tx, struct ward_idem *im, const char *key,
                                 bool required, const char *method, const char *path,
                                 const char *body, size_t body_len, const char *request_id,
                                 struct ward_idem_claim *c)
{
    char fp[65];
    bool go;
    if (tx == NULL)
        return WARD_ERR_INVAL;
    enum ward_err err = claim_prepare(im, key, required, method, path, body, body_len, c, fp, &go);
    if (err != WARD_ERR_OK || !go)
        return err;
    /* the claim's row and the effect commit together: a concurrent claim of the same key
     * waits for the writer (SQLite) or fails to serialize and runs again (PostgreSQL),
     * and then finds it done */
    struct claim_work w = {.im = im, .c = c, .fp = fp, .request_id = request_id};
    return claim_fn(tx, &w);
}

static struct ward_query q_complete = WARD_QUERY(
    "UPDATE ward_idempotency SET state = 'done', status = $4, content_type = $5, "
    "location = $6, body = $7 WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'running'");

enum ward_err ward_idem_complete(struct ward_tx *tx, struct ward_idem *im,
                                 const struct ward_idem_claim *c, int status,
                                 const char *content_type, const char *location,
                                 const char *body, size_t body_len)
{
    if (tx == NULL || im == NULL || c == NULL || c->verdict != WARD_IDEM_PROCEED)
        return WARD_ERR_INVAL;
    if (c->key[0] == '\0')
        return WARD_ERR_OK;
    /* bodies are JSON text: stored as text, so a NUL inside would cut them */
    if (body != NULL && memchr(body, '\0', body_len) != NULL)
        return WARD_ERR_INVAL;
    char *text = body != NULL ? strndup(body, body_len) : NULL;
    if (body != NULL && text == NULL)
        return WARD_ERR_NOMEM;
    enum ward_err err = ward_tx_exec(
        tx, &q_complete,
        (struct ward_param[]){WARD_P_TEXT(im->scope), WARD_P_TEXT(c->key),
                              WARD_P_TEXT(c->owner), WARD_P_INT(status),
                              WARD_P_TEXT_OR_NULL(content_type), WARD_P_TEXT_OR_NULL(location),
                              WARD_P_TEXT_OR_NULL(text)},
        7, NULL);
    free(text);
    if (err == WARD_ERR_OK && ward_tx_changes(tx) != 1)
        err = WARD_ERR_CONFLICT;
    return err;
}

struct finish_work {
    struct ward_idem *im;
    const struct ward_idem_claim *c;
    int status;
    const char *content_type, *body;
    size_t len;
};

static enum ward_err finish_fn(struct ward_tx *tx, void *arg)
{
    struct finish_work *f = arg;
    return ward_idem_complete(tx, f->im, f->c, f->status, f->content_type, NULL, f->body, f->len);
}

enum ward_err ward_idem_finish(struct ward_idem *im, const struct ward_idem_claim *c, int status,
                               const char *content_type, const char *body, size_t body_len)
{
    struct finish_work f = {im, c, status, content_type, body, body_len};
    if (im == NULL || c == NULL)
        return WARD_ERR_INVAL;
    if (c->key[0] == '\0')
        return WARD_ERR_OK;
    return ward_store_tx(im->store, WARD_TX_WRITE, finish_fn, &f);
}

static struct ward_query q_release = WARD_QUERY(
    "DELETE FROM ward_idempotency WHERE scope = $1 AND key = $2 AND owner = $3 "
    "AND state = 'running'");

struct release_work {
    struct ward_idem *im;
    const struct ward_idem_claim *c;
};

static enum ward_err release_fn(struct ward_tx *tx, void *arg)
{
    struct release_work *r = arg;
    return ward_tx_exec(tx, &q_release,
                        (struct ward_param[]){WARD_P_TEXT(r->im->scope), WARD_P_TEXT(r->c->key),
                                              WARD_P_TEXT(r->c->owner)},
                        3, NULL);
}

enum ward_err ward_idem_release(struct ward_idem *im, const struct ward_idem_claim *c)
{
    struct release_work r = {im, c};
    if (im == NULL || c == NULL)
        return WARD_ERR_INVAL;
    if (c->key[0] == '\0' || c->verdict != WARD_IDEM_PROCEED)
        return WARD_ERR_OK;
    return ward_store_tx(im->store, WARD_TX_WRITE, release_fn, &r);
}

void ward_idem_respond(struct ward_req *req, const struct ward_idem_claim *c)
{
    switch (c->verdict) {
    case WARD_IDEM_REPLAY:
        if (ward_req_set_header(req, "Idempotent-Replayed", "true") != WARD_ERR_OK ||
            (c->location != NULL &&
             ward_req_set_header(req, "Location", c->location) != WARD_ERR_OK)) {
            ward_req_respond_problem(req, NULL); /* out of memory: a plain 500 */
            return;
        }
        ward_req_respond(req, c->status,
                         c->content_type != NULL ? c->content_type : "application/json",
                         c->body != NULL ? c->body : "", c->body_len);
        return;
    case WARD_IDEM_MISSING:
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_KEY_MISSING,
                      "this request needs an Idempotency-Key header");
        return;
    case WARD_IDEM_INVALID:
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_KEY_INVALID,
                      "an Idempotency-Key is 1 to %d printable ASCII characters",
                      WARD_IDEM_KEY_MAX);
        return;
    case WARD_IDEM_MISMATCH:
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_KEY_REUSED,
                      "this Idempotency-Key was used with a different request");
        return;
    case WARD_IDEM_RUNNING:
        if (ward_req_set_header(req, "Retry-After", "1") != WARD_ERR_OK) {
            ward_req_respond_problem(req, NULL);
            return;
        }
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_IN_FLIGHT,
                      "a request with this Idempotency-Key is still being processed");
        return;
    case WARD_IDEM_PROCEED:
    default:
        ward_req_fail(req, WARD_PROBLEM_INTERNAL, "idempotency claim answered without a verdict");
        return;
    }
}

void ward_idem_claim_fini(struct ward_idem_claim *c)
{
    if (c == NULL)
        return;
    free(c->content_type);
    free(c->location);
    free(c->body);
    c->content_type = c->location = c->body = NULL;
    c->body_len = 0;
}

bool ward_idem_begin(struct ward_idem *im, struct ward_req *req, bool required,
                     struct ward_idem_claim *c)
{
    size_t len = 0;
    const char *body = ward_req_body(req, &len);
    enum ward_err err = ward_idem_claim(im, ward_req_header(req, "Idempotency-Key"), required,
                                        ward_req_method(req), ward_req_path(req), body, len,
                                        ward_req_id(req), c);
    if (err != WARD_ERR_OK) {
        ward_store_respond_error(req, err);
        return false;
    }
    if (c->verdict != WARD_IDEM_PROCEED) {
        ward_idem_respond(req, c);
        ward_idem_claim_fini(c);
        return false;
    }
    return true;
}

enum ward_err ward_idem_begin_in(struct ward_tx *tx, struct ward_idem *im, struct ward_req *req,
                                 bool required, struct ward_idem_claim *c)
{
    size_t len = 0;
    const char *body = ward_req_body(req, &len);
    return ward_idem_claim_in(tx, im, ward_req_header(req, "Idempotency-Key"), required,
                              ward_req_method(req), ward_req_path(req), body, len,
                              ward_req_id(req), c);
}

/* Gives the key back, logging when it cannot (it then runs out with its lease). */
static void release_or_log(struct ward_idem *im, struct ward_req *req,
                           const struct ward_idem_claim *c)
{
    if (ward_idem_release(im, c) != WARD_ERR_OK)
        WARD_WARN(ward_req_log(req), ward_req_log_ctx(req),
                  "idempotency key not released; it frees itself after its lease",
                  WARD_S("key", c->key));
}

void ward_idem_fail(struct ward_idem *im, struct ward_req *req, const struct ward_idem_claim *c,
                    struct ward_problem *p)
{
    int status = p != NULL ? ward_problem_status(p) : 500;
    json_t *doc = p != NULL ? ward_problem_to_json(p, ward_req_path(req), ward_req_id(req)) : NULL;
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    ward_problem_free(p);
    if (text == NULL) { /* no definite answer to keep: let a retry run anew */
        release_or_log(im, req, c);
        ward_req_respond_problem(req, NULL);
        return;
    }
    if (ward_idem_finish(im, c, status, "application/problem+json", text, strlen(text)) !=
        WARD_ERR_OK)
        release_or_log(im, req, c);
    ward_req_respond(req, status, "application/problem+json", text, strlen(text));
    free(text);
}

void ward_idem_store_failed(struct ward_idem *im, struct ward_req *req,
                            const struct ward_idem_claim *c, enum ward_err err)
{
    if (err == WARD_ERR_CONFLICT) {
        if (ward_req_set_header(req, "Retry-After", "1") != WARD_ERR_OK) {
            ward_req_respond_problem(req, NULL);
            return;
        }
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_IN_FLIGHT,
                      "another request with this Idempotency-Key took over; retry");
        return;
    }
    release_or_log(im, req, c);
    ward_store_respond_error(req, err);
}
