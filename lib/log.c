/* log.c — JSON-lines logger: lines (formatted by log_format.c on the caller's stack) are
 * appended to a shared buffer under a short lock and written out by a background thread. */
#include <ward/log.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/thread.h>

#include "log_int.h"

enum {
    BUF_CAP = 2 * 1024 * 1024, /* per buffer; two buffers make the 4 MiB cap */
    BUF_KICK = 64 * 1024,      /* the writer is woken when this much is waiting */
};

#define FLUSH_PERIOD_NS (50 * WARD_NS_PER_MS)
#define ROOM_WAIT_NS (10 * WARD_NS_PER_MS) /* how long DEBUG/INFO wait for a full buffer */

struct ward_log {
    _Atomic int level;
    int fd;
    char *service; /* `,"service":"<escaped>"`, ready to copy */
    size_t service_len;

    pthread_mutex_t mu;
    pthread_cond_t wake; /* the writer waits here */
    pthread_cond_t done; /* flushers and writers out of room wait here */
    pthread_t thread;

    /* Under mu. Bytes are counted since the start: cur holds (taken, appended]; the
     * writer is writing (written, taken] from its own buffer, outside the lock. */
    char *cur;
    char *spare;
    size_t len;
    uint64_t appended;
    uint64_t taken;
    uint64_t written;
    uint64_t flush_to;
    uint64_t dropped;
    bool idle;   /* the writer sleeps with nothing to write: wake it on the first byte */
    bool kicked; /* the writer was woken because len passed BUF_KICK */
    bool stalled; /* a wait for room timed out: drop DEBUG/INFO at once until a swap */
    bool stop;
};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* Writes all of p, retrying on EINTR and short writes and waiting out EAGAIN on a
 * non-blocking fd. Any other error drops the rest: a logger has nowhere to report it. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};

            poll(&pfd, 1, -1);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
}

/* Tells how many lines were dropped for want of room, from the writer thread. */
static void write_drop_report(struct ward_log *log, uint64_t dropped)
{
    char stack[WARD__LOG_LINE_STACK];
    struct ward__log_line ln = {.p = stack, .cap = sizeof stack};

    ward__log_head(&ln, log->service, log->service_len, WARD_LOG_WARN, NULL,
                   "log lines dropped: output too slow");
    ward__log_kv(&ln, &WARD_I("dropped", dropped > INT64_MAX ? INT64_MAX : (int64_t)dropped));
    ward__log_finish(&ln);
    write_all(log->fd, ln.p, ln.len);
    ward__log_line_release(&ln);
}

static void deadline_in(struct timespec *ts, int64_t ns)
{
    int64_t at = ward_clock_now(NULL) + ns;

    ts->tv_sec = (time_t)(at / WARD_NS_PER_S);
    ts->tv_nsec = (long)(at % WARD_NS_PER_S);
}

/* The writer thread: swaps the buffers under the lock and writes outside it, 50 ms
 * after the first byte of a batch, at once on a flush, a full-ish buffer or stop. */
static void *writer_main(void *arg)
{
    struct ward_log *log = arg;
    struct timespec deadline;

    deadline_in(&deadline, FLUSH_PERIOD_NS); /* lines may arrive before the first wait */
    pthread_mutex_lock(&log->mu);
    for (;;) {
        bool timed_out = false;
        char *out;
        size_t n;
        uint64_t dropped;

        if (log->len == 0 && log->dropped == 0) {
            if (log->stop)
                break;
            log->idle = true;
            pthread_cond_wait(&log->wake, &log->mu);
            log->idle = false;
            deadline_in(&deadline, FLUSH_PERIOD_NS);
            continue;
        }
        while (!timed_out && !log->stop && log->len < BUF_KICK && log->flush_to <= log->taken)
            timed_out = pthread_cond_timedwait(&log->wake, &log->mu, &deadline) != 0;
        out = log->cur;
        n = log->len;
        dropped = log->dropped;
        log->cur = log->spare;
        log->spare = out;
        log->len = 0;
        log->dropped = 0;
        log->taken = log->appended;
        log->kicked = false;
        log->stalled = false;
        pthread_cond_broadcast(&log->done); /* room for writers that waited */
        pthread_mutex_unlock(&log->mu);

        write_all(log->fd, out, n);
        if (dropped > 0)
            write_drop_report(log, dropped);
        deadline_in(&deadline, FLUSH_PERIOD_NS);

        pthread_mutex_lock(&log->mu);
        log->written = log->taken;
        pthread_cond_broadcast(&log->done);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

/* Waits, under mu, until everything appended so far is written. */
static void flush_locked(struct ward_log *log)
{
    uint64_t target = log->appended;

    if (log->flush_to < target)
        log->flush_to = target;
    if (log->written < target)
        pthread_cond_signal(&log->wake);
    while (log->written < target)
        pthread_cond_wait(&log->done, &log->mu);
}

/* Appends a finished line. When the buffers are full (the fd is slower than the lines),
 * DEBUG and INFO wait up to ROOM_WAIT_NS for room, which rides out a writer that is
 * merely short of CPU, and are then dropped and counted; after one such timeout they
 * are dropped at once until the writer makes progress, so a stuck fd costs the hot path
 * at most one short wait. WARN and ERROR wait for room as long as it takes, then for
 * their own write. */
static void submit(struct ward_log *log, enum ward_log_level level, const char *p, size_t n)
{
    bool urgent = level >= WARD_LOG_WARN;
    struct timespec until;

    pthread_mutex_lock(&log->mu);
    if (log->len + n > BUF_CAP && !urgent && !log->stalled) {
        deadline_in(&until, ROOM_WAIT_NS);
        pthread_cond_signal(&log->wake);
        while (log->len + n > BUF_CAP && !log->stalled) {
            if (pthread_cond_timedwait(&log->done, &log->mu, &until) != 0)
                log->stalled = true;
        }
    }
    if (log->len + n > BUF_CAP && !urgent) {
        log->dropped++;
        goto out;
    }
    while (log->len + n > BUF_CAP) {
        log->flush_to = log->appended;
        pthread_cond_signal(&log->wake);
        pthread_cond_wait(&log->done, &log->mu);
    }
    memcpy(log->cur + log->len, p, n);
    log->len += n;
    log->appended += n;
    if (urgent) {
        flush_locked(log);
    } else if (log->idle || (log->len >= BUF_KICK && !log->kicked)) {
        log->idle = false;
        log->kicked = log->len >= BUF_KICK;
        pthread_cond_signal(&log->wake);
    }
out:
    pthread_mutex_unlock(&log->mu);
}

struct ward_log *ward_log_new(const char *service, enum ward_log_level level, int fd)
{
    struct ward_log *log = NULL;
    int sync_made = 0;

    if (fd < 0 || (int)level < WARD_LOG_DEBUG || level > WARD_LOG_OFF)
        goto fail;
    log = calloc(1, sizeof *log);
    if (log == NULL)
        goto fail;
    atomic_init(&log->level, (int)level);
    log->fd = fd;
    log->service = ward__log_service_member(service, &log->service_len);
    log->cur = malloc(BUF_CAP);
    log->spare = malloc(BUF_CAP);
    if (log->service == NULL || log->cur == NULL || log->spare == NULL)
        goto fail;
    if (pthread_mutex_init(&log->mu, NULL) != 0)
        goto fail;
    sync_made++;
    if (ward_cond_init_monotonic(&log->wake) != WARD_ERR_OK)
        goto fail;
    sync_made++;
    if (ward_cond_init_monotonic(&log->done) != WARD_ERR_OK)
        goto fail;
    sync_made++;
    /* The writer must never take a signal meant for the process (SIGTERM, SIGINT);
     * blocked SIGPIPE also turns a closed reader into a plain EPIPE. */
    if (ward_thread_start(&log->thread, writer_main, log) != WARD_ERR_OK)
        goto fail;
    return log;
fail:
    if (log != NULL) {
        if (sync_made > 2)
            pthread_cond_destroy(&log->done);
        if (sync_made > 1)
            pthread_cond_destroy(&log->wake);
        if (sync_made > 0)
            pthread_mutex_destroy(&log->mu);
        free(log->service);
        free(log->cur);
        free(log->spare);
        free(log);
    }
    return NULL;
}

void ward_log_free(struct ward_log *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->mu);
    flush_locked(log);
    log->stop = true;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->thread, NULL);
    pthread_cond_destroy(&log->done);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->mu);
    free(log->service);
    free(log->cur);
    free(log->spare);
    free(log);
}

bool ward_log_enabled(const struct ward_log *log, enum ward_log_level level)
{
    if (log == NULL || (int)level < WARD_LOG_DEBUG || level >= WARD_LOG_OFF)
        return false;
    return (int)level >= atomic_load_explicit(&log->level, memory_order_relaxed);
}

void ward_log_set_level(struct ward_log *log, enum ward_log_level level)
{
    if (log != NULL && (int)level >= WARD_LOG_DEBUG && level <= WARD_LOG_OFF)
        atomic_store_explicit(&log->level, (int)level, memory_order_relaxed);
}

void ward_log_flush(struct ward_log *log)
{
    if (log == NULL)
        return;
    pthread_mutex_lock(&log->mu);
    flush_locked(log);
    pthread_mutex_unlock(&log->mu);
}

enum ward_err ward_log_level_parse(const char *text, enum ward_log_level *out)
{
    enum ward_err err = WARD_ERR_INVAL;

    for (int i = WARD_LOG_DEBUG; text != NULL && out != NULL && i <= WARD_LOG_OFF; i++) {
        /* operators write WARD_LOG_LEVEL=INFO as often as info */
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (enum ward_log_level)i;
            err = WARD_ERR_OK;
            break;
        }
    }
    return err;
}

const char *ward_log_level_name(enum ward_log_level level)
{
    if ((int)level < WARD_LOG_DEBUG || level > WARD_LOG_OFF)
        return "unknown";
    return level_names[level];
}

/* A thread's batch (ward_log_batch_begin): its DEBUG and INFO lines for one log, kept
 * here and handed over at once, one lock for many lines. */
#define BATCH_CAP (64 * 1024)
static _Thread_local struct {
    struct ward_log *log;
    char *buf;
    size_t len;
} batch;

void ward_log_batch_begin(struct ward_log *log)
{
    if (log == NULL)
        return;
    if (batch.buf == NULL && (batch.buf = malloc(BATCH_CAP)) == NULL)
        return; /* no room: lines go one by one, as without a batch */
    batch.log = log;
}

void ward_log_batch_end(struct ward_log *log)
{
    if (log == NULL || batch.log != log)
        return;
    if (batch.len > 0)
        submit(log, WARD_LOG_INFO, batch.buf, batch.len);
    batch.len = 0;
    batch.log = NULL;
}

void ward_log_batch_release(void)
{
    free(batch.buf);
    batch.buf = NULL;
    batch.len = 0;
    batch.log = NULL;
}

/* Hands a finished line over: into the thread's batch when one is open for log. */
static void hand_over(struct ward_log *log, enum ward_log_level level, const char *p, size_t n)
{
    if (batch.log != log || level >= WARD_LOG_WARN || n > BATCH_CAP) {
        submit(log, level, p, n);
        return;
    }
    if (batch.len + n > BATCH_CAP) {
        submit(log, WARD_LOG_INFO, batch.buf, batch.len);
        batch.len = 0;
    }
    memcpy(batch.buf + batch.len, p, n);
    batch.len += n;
}

void ward_log_write(struct ward_log *log, enum ward_log_level level,
                    const struct ward_log_ctx *ctx, const char *msg, ...)
{
    char stack[WARD__LOG_LINE_STACK];
    struct ward__log_line ln = {.p = stack, .cap = sizeof stack};
    struct ward_kv kv;
    va_list ap;

    if (!ward_log_enabled(log, level))
        return; /* nothing held yet */
    ward__log_head(&ln, log->service, log->service_len, level, ctx, msg);
    va_start(ap, msg);
    for (kv = va_arg(ap, struct ward_kv); kv.type != WARD_KV_END; kv = va_arg(ap, struct ward_kv))
        ward__log_kv(&ln, &kv);
    va_end(ap);
    ward__log_finish(&ln);
    hand_over(log, level, ln.p, ln.len);
    ward__log_line_release(&ln);
}
