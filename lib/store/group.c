/* group.c — group commit on SQLite's writer: write transactions of several threads share
 * one database transaction and one COMMIT (one fsync), each member's work in a savepoint
 * of its own, run on its own thread; the connection is handed from member to member
 * (docs/lib/store.md, "Group commit"). */
#include "store_int.h"

#include <time.h>

#include <ward/thread.h>

#define NS_PER_S INT64_C(1000000000)

enum ward_err ward__group_init(struct ward__group *g)
{
    *g = (struct ward__group){0};
    if (pthread_mutex_init(&g->lock, NULL) != 0)
        return WARD_ERR_SYSTEM;
    if (ward_cond_init_monotonic(&g->turn) != WARD_ERR_OK)
        goto fail_lock;
    if (ward_cond_init_monotonic(&g->ended) != WARD_ERR_OK)
        goto fail_turn;
    return WARD_ERR_OK;
fail_turn:
    pthread_cond_destroy(&g->turn);
fail_lock:
    pthread_mutex_destroy(&g->lock);
    return WARD_ERR_SYSTEM;
}

void ward__group_fini(struct ward__group *g)
{
    pthread_cond_destroy(&g->ended);
    pthread_cond_destroy(&g->turn);
    pthread_mutex_destroy(&g->lock);
}

size_t ward__store_writers_waiting(struct ward_store *s)
{
    pthread_mutex_lock(&s->group.lock);
    size_t n = s->group.waiting;
    pthread_mutex_unlock(&s->group.lock);
    return n;
}

/* Waits for the connection (no other thread opening the group or working in it) and takes
 * it. TIMEOUT when it stayed busy for acquire_timeout, as a pool that has no connection
 * free. A thread woken after its deadline still takes a connection that came free: the
 * member that handed it over counted on a taker. */
static enum ward_err take(struct ward_store *s, struct ward__group *g)
{
    int64_t t = ward_clock_now(ward_clock_real()) + s->s.acquire_timeout;
    struct timespec until = {.tv_sec = (time_t)(t / NS_PER_S), .tv_nsec = (long)(t % NS_PER_S)};
    enum ward_err err = WARD_ERR_OK;

    pthread_mutex_lock(&g->lock);
    g->waiting++;
    while (g->busy && err == WARD_ERR_OK)
        if (pthread_cond_timedwait(&g->turn, &g->lock, &until) != 0 && g->busy &&
            ward_clock_now(ward_clock_real()) >= t)
            err = WARD_ERR_TIMEOUT;
    g->waiting--;
    if (err == WARD_ERR_OK)
        g->busy = true;
    pthread_mutex_unlock(&g->lock);
    return err;
}

/* Lets the next waiting thread have the connection. */
static void give_back(struct ward__group *g)
{
    pthread_mutex_lock(&g->lock);
    g->busy = false;
    pthread_cond_signal(&g->turn);
    pthread_mutex_unlock(&g->lock);
}

/* Opens a group: the writer, BEGIN IMMEDIATE. A BUSY here (another process writes) is the
 * runner's ordinary RETRY, with no group opened. */
static enum ward_err open_group(struct ward_store *s, struct ward__group *g)
{
    struct ward__conn *c = NULL;
    enum ward_err err = ward__conn_acquire(s, WARD_TX_WRITE, &c);
    if (err != WARD_ERR_OK)
        return err;
    err = s->ops->begin(c, WARD_TX_WRITE);
    if (err != WARD_ERR_OK) {
        ward__conn_release(s, c);
        return err;
    }
    g->conn = c;
    g->members = 0;
    g->broken = false;
    return WARD_ERR_OK;
}

/* Runs fn in a savepoint of the open group. Returns OK with the work kept, or an error with
 * it undone: fn's, or RETRY when fn succeeded (or did not run) but the group broke under
 * it — its work goes again, in a new group. */
static enum ward_err work(struct ward_store *s, struct ward__group *g, ward_tx_fn fn,
                          void *arg, bool *began)
{
    struct ward__conn *c = g->conn;
    struct ward_tx tx = {.store = s, .conn = c};
    enum ward_err err = s->ops->part(c, WARD__PART_MARK);

    if (err != WARD_ERR_OK) {
        g->broken = true;
        return WARD_ERR_RETRY;
    }
    *began = true;
    err = fn(&tx, arg);
    if (err == WARD_ERR_OK) {
        err = s->ops->part(c, WARD__PART_KEEP);
        if (err == WARD_ERR_OK)
            return WARD_ERR_OK;
        if (err != WARD_ERR_CONSTRAINT) {
            g->broken = true;
            return WARD_ERR_RETRY;
        }
    }
    /* only this member's part goes; the others' stays */
    if (s->ops->part(c, WARD__PART_UNDO) != WARD_ERR_OK)
        g->broken = true;
    return err;
}

/* Ends the open group (its last member does, holding the connection): COMMIT when some
 * work was kept, else ROLLBACK; a broken group rolls back and its kept members get RETRY.
 * Gives each kept member the outcome, the writer back to the pool, and the connection to
 * the next waiting thread. */
static void end_group(struct ward_store *s, struct ward__group *g)
{
    struct ward__conn *c = g->conn;
    enum ward_err out = WARD_ERR_RETRY;

    if (!g->broken && g->kept != NULL) {
        out = s->ops->commit(c);
        if (out == WARD_ERR_OK)
            ward__store_count(&s->m_commits);
    }
    if (out != WARD_ERR_OK || g->kept == NULL)
        s->ops->rollback(c); /* a refused commit may leave the transaction open */
    g->conn = NULL;
    ward__conn_release(s, c);

    pthread_mutex_lock(&g->lock);
    for (struct ward__member *m = g->kept, *next = NULL; m != NULL; m = next) {
        next = m->next; /* m's thread may return as soon as done is set and we unlock */
        m->err = out;
        m->done = true;
    }
    g->kept = NULL;
    g->busy = false;
    pthread_cond_broadcast(&g->ended);
    pthread_cond_signal(&g->turn);
    pthread_mutex_unlock(&g->lock);
}

enum ward_err ward__group_tx(struct ward_store *s, ward_tx_fn fn, void *arg, bool *began)
{
    struct ward__group *g = &s->group;
    struct ward__member me = {0};
    enum ward_err err;

    *began = false;
    err = take(s, g);
    if (err != WARD_ERR_OK)
        return err;
    if (g->conn == NULL) {
        err = open_group(s, g);
        if (err != WARD_ERR_OK) {
            give_back(g);
            return err;
        }
    }
    err = work(s, g, fn, arg, began);
    bool kept = err == WARD_ERR_OK;

    pthread_mutex_lock(&g->lock);
    g->members++;
    if (kept) {
        me.next = g->kept;
        g->kept = &me;
    }
    /* hand over while someone waits to write: its work joins this transaction */
    if (!g->broken && g->waiting > 0 && g->members < s->s.group_max) {
        g->busy = false;
        pthread_cond_signal(&g->turn);
        /* a failed member's answer is its own error: it need not wait for the commit */
        while (kept && !me.done)
            pthread_cond_wait(&g->ended, &g->lock);
        pthread_mutex_unlock(&g->lock);
    } else {
        pthread_mutex_unlock(&g->lock);
        end_group(s, g);
    }
    if (kept)
        err = me.err; /* set under the lock before done, which we saw (or set) */
    ward__store_count(&s->m_tx[err == WARD_ERR_OK ? WARD__TX_COMMITTED : WARD__TX_ROLLED_BACK]);
    return err;
}
