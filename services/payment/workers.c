/* workers.c — a fixed pool of --workers threads taking payment ids from an in-process
 * queue and driving their sagas with blocking calls. An id is queued at most once while
 * it is queued or being driven, so one instance never runs a payment twice at once. */
#include <stdlib.h>
#include <string.h>

#include <ward/thread.h>

#include "pay.h"

struct pay_item {
    struct pay_item *next;  /* in the queue */
    struct pay_item *chain; /* in the active set's bucket */
    char id[WARD_ID_MAX];
};

static size_t bucket(const struct pay_queue *q, const char *id)
{
    uint64_t h = 1469598103934665603u;
    for (const char *c = id; *c != '\0'; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211u;
    return (size_t)(h % q->buckets);
}

/* With q->lock held. */
static struct pay_item **find(struct pay_queue *q, const char *id)
{
    struct pay_item **p = &q->active[bucket(q, id)];
    while (*p != NULL && strcmp((*p)->id, id) != 0)
        p = &(*p)->chain;
    return p;
}

bool pay_workers_active(struct pay_ctx *ctx, const char *id)
{
    struct pay_queue *q = &ctx->queue;
    pthread_mutex_lock(&q->lock);
    bool found = *find(q, id) != NULL;
    pthread_mutex_unlock(&q->lock);
    return found;
}

void pay_workers_submit(struct pay_ctx *ctx, const char *id)
{
    struct pay_queue *q = &ctx->queue;
    pthread_mutex_lock(&q->lock);
    struct pay_item **slot = find(q, id);
    if (q->closing || *slot != NULL)
        goto out; /* already ours; at shutdown the lease runs out and recovery resumes it */
    struct pay_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        goto out; /* the same: it is in the database, recovery finds it */
    strncpy(it->id, id, sizeof it->id - 1);
    *slot = it;
    if (q->tail != NULL)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    pthread_cond_signal(&q->cond);
out:
    pthread_mutex_unlock(&q->lock);
}

static void *worker(void *arg)
{
    struct pay_ctx *ctx = arg;
    struct pay_queue *q = &ctx->queue;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (q->head == NULL && !q->closing)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->closing)
            break;
        struct pay_item *it = q->head;
        q->head = it->next;
        if (q->head == NULL)
            q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        pay_saga_drive(ctx, it->id);
        pthread_mutex_lock(&q->lock);
        struct pay_item **slot = find(q, it->id);
        *slot = it->chain;
        free(it);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

enum ward_err pay_workers_start(struct pay_ctx *ctx)
{
    struct pay_queue *q = &ctx->queue;
    q->buckets = 1024;
    q->active = calloc(q->buckets, sizeof *q->active);
    q->threads = calloc((size_t)ctx->workers, sizeof *q->threads);
    if (q->active == NULL || q->threads == NULL)
        return WARD_ERR_NOMEM;
    for (size_t i = 0; i < (size_t)ctx->workers; i++) {
        enum ward_err err = ward_thread_start(&q->threads[i], worker, ctx);
        if (err != WARD_ERR_OK)
            return err;
        q->n_threads++;
    }
    return WARD_ERR_OK;
}

void pay_workers_stop(struct pay_ctx *ctx)
{
    struct pay_queue *q = &ctx->queue;
    pthread_mutex_lock(&q->lock);
    q->closing = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    for (size_t i = 0; i < q->n_threads; i++)
        pthread_join(q->threads[i], NULL);
    /* what is still queued stays pending in the database: its lease runs out and
     * recovery (here after a restart, or another instance) resumes it */
    for (struct pay_item *it = q->head, *next; it != NULL; it = next) {
        next = it->next;
        free(it);
    }
    q->head = q->tail = NULL;
    free(q->active);
    free(q->threads);
    q->active = NULL;
    q->threads = NULL;
    q->n_threads = 0;
}
