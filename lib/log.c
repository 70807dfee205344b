/* log.c — JSON-lines logger: lines are formatted on the caller's stack, appended to a
 * shared buffer under a short lock, and written out by a background thread. */
#include <ward/log.h>

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ward/clock.h>

enum {
    LINE_STACK = 1024,          /* most lines fit on the caller's stack */
    LINE_MAX_BYTES = 64 * 1024, /* longer lines are truncated */
    LINE_RESERVE = 32,          /* room always kept to close a truncated line */
    BUF_CAP = 2 * 1024 * 1024,  /* per buffer; two buffers make the 4 MiB cap */
    BUF_KICK = 64 * 1024,       /* the writer is woken when this much is waiting */
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

/* One line being formatted. Content never goes past cap - LINE_RESERVE, so there is
 * always room to close a string and the object after a truncation. */
struct line {
    char *p;
    size_t len;
    size_t cap;
    size_t safe; /* length at the end of the last complete member */
    bool heap;
    bool full; /* truncated: nothing more is added */
};

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

/* Grows the line so that n more bytes fit; false (and the line marked full) when the
 * 64 KiB limit or memory runs out. */
static bool line_grow(struct line *ln, size_t n)
{
    size_t want = ln->len + n + LINE_RESERVE;
    size_t cap = ln->cap * 2;
    char *p;

    if (ln->full)
        return false;
    if (ln->cap < LINE_MAX_BYTES) {
        if (cap < want)
            cap = want;
        if (cap > LINE_MAX_BYTES)
            cap = LINE_MAX_BYTES;
        p = ln->heap ? realloc(ln->p, cap) : malloc(cap);
        if (p == NULL)
            goto full;
        if (!ln->heap)
            memcpy(p, ln->p, ln->len);
        ln->p = p;
        ln->cap = cap;
        ln->heap = true;
    }
    if (want <= ln->cap)
        return true;
full:
    ln->full = true;
    return false;
}

static inline bool line_fits(struct line *ln, size_t n)
{
    if (!ln->full && ln->len + n + LINE_RESERVE <= ln->cap)
        return true;
    return line_grow(ln, n);
}

/* Appends all of s or nothing. */
static inline void put(struct line *ln, const void *s, size_t n)
{
    if (line_fits(ln, n)) {
        memcpy(ln->p + ln->len, s, n);
        ln->len += n;
    }
}

/* Appends as much of s as fits: for plain ASCII inside a string, where a cut is harmless. */
static void put_part(struct line *ln, const void *s, size_t n)
{
    if (!line_fits(ln, n)) {
        size_t room = ln->cap - LINE_RESERVE - ln->len;

        n = room < n ? room : n;
    }
    memcpy(ln->p + ln->len, s, n);
    ln->len += n;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629) at s, or 0 when ill-formed. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t n;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0; /* overlong */
    else if (c == 0xed)
        hi = 0x9f; /* surrogates */
    else if (c == 0xf0)
        lo = 0x90; /* overlong */
    else if (c == 0xf4)
        hi = 0x8f; /* above U+10FFFF */
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Nonzero when one of the 8 bytes in w is a control byte, '"', '\\' or not ASCII: the
 * has-zero-byte and has-less-than tricks, on a whole word at once. */
static inline uint64_t word_special(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');

    return (w | ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b)) & HIGHS;
}

/* Length of the leading part of s[0..n) that goes into a JSON string unchanged. */
static size_t plain_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    uint64_t w;

    while (i + 8 <= n) {
        memcpy(&w, s + i, 8);
        if (word_special(w) != 0)
            break;
        i += 8;
    }
    while (i < n && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

/* Appends s as the inside of a JSON string: quote, backslash and control bytes escaped,
 * each ill-formed UTF-8 byte replaced by U+FFFD. Never cuts an escape or a character. */
static void put_escaped(struct line *ln, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);

    while (p < end && !ln->full) {
        size_t n = plain_run(p, (size_t)(end - p));
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};

        if (n > 0) {
            put_part(ln, p, n);
            p += n;
            continue;
        }
        if (*p >= 0x80) {
            n = utf8_len(p);
            if (n > 0)
                put(ln, p, n);
            else
                put(ln, "\\ufffd", 6);
            p += n > 0 ? n : 1;
            continue;
        }
        n = 2;
        switch (*p) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            n = 6;
            break;
        }
        put(ln, esc, n);
        p++;
    }
}

/* Starts member key: `,"key":`. */
static void put_key(struct line *ln, const char *key)
{
    put(ln, ",\"", 2);
    put_escaped(ln, key);
    put(ln, "\":", 2);
}

/* Ends a member: it is kept whole, or dropped whole when it did not fit. */
static void end_member(struct line *ln)
{
    if (ln->full)
        ln->len = ln->safe;
    else
        ln->safe = ln->len;
}

/* A string member; a value cut by the limit is closed and kept. NULL is null. */
static void put_str_member(struct line *ln, const char *key, const char *val)
{
    put_key(ln, key);
    if (val == NULL) {
        put(ln, "null", 4);
        end_member(ln);
        return;
    }
    put(ln, "\"", 1);
    if (ln->full) {
        ln->len = ln->safe;
        return;
    }
    put_escaped(ln, val);
    ln->p[ln->len++] = '"'; /* within LINE_RESERVE even when full */
    ln->safe = ln->len;
}

/* Decimal text of u; returns its length. buf holds at least 20 bytes. */
static size_t fmt_u64(char *buf, uint64_t u)
{
    char tmp[24];
    size_t n = 0;
    size_t out = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    while (n > 0)
        buf[out++] = tmp[--n];
    return out;
}

static size_t fmt_i64(char *buf, int64_t v)
{
    if (v >= 0)
        return fmt_u64(buf, (uint64_t)v);
    buf[0] = '-';
    return 1 + fmt_u64(buf + 1, (uint64_t)0 - (uint64_t)v);
}

/* d in fixed point when at most 6 decimals read back as exactly d (durations, ratios),
 * else 0. Exact: r and 1e6 are exact doubles, and both r / 1e6 and strtod round the
 * same decimal value correctly. Some ten times cheaper than printf's %g. */
static size_t fmt_fixed6(char *buf, double d)
{
    double scaled = d * 1e6;
    uint64_t u;
    uint32_t frac;
    size_t n = 0;
    int64_t r;

    if (!(fabs(scaled) < 9007199254740992.0)) /* 2^53; also rejects NaN */
        return 0;
    r = llround(scaled);
    if ((double)r / 1e6 != d)
        return 0;
    if (r < 0)
        buf[n++] = '-';
    u = r < 0 ? (uint64_t)0 - (uint64_t)r : (uint64_t)r;
    n += fmt_u64(buf + n, u / 1000000);
    frac = (uint32_t)(u % 1000000);
    if (frac != 0) {
        buf[n++] = '.';
        for (uint32_t div = 100000; frac != 0; div /= 10) {
            buf[n++] = (char)('0' + frac / div);
            frac %= div;
        }
    }
    return n;
}

/* Shortest text that reads back as d (fixed point, else the shortest of %.15g..%.17g);
 * NaN and infinities are null. buf holds at least 32 bytes. */
static size_t fmt_double(char *buf, size_t size, double d)
{
    size_t n;
    int len = 0;

    if (!isfinite(d)) {
        memcpy(buf, "null", 4);
        return 4;
    }
    n = fmt_fixed6(buf, d);
    if (n > 0)
        return n;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    for (int i = 0; i < len; i++) {
        if (buf[i] == ',')
            buf[i] = '.'; /* a locale's decimal comma is not JSON */
    }
    if (len <= 0 || (size_t)len >= size) {
        memcpy(buf, "null", 4);
        len = 4;
    }
    return (size_t)len;
}

static void put_kv(struct line *ln, const struct ward_kv *kv)
{
    char num[40];
    size_t n;

    if (kv->key == NULL)
        return;
    switch (kv->type) {
    case WARD_KV_STR:
        put_str_member(ln, kv->key, kv->v.s);
        return;
    case WARD_KV_INT:
        n = fmt_i64(num, kv->v.i);
        break;
    case WARD_KV_DBL:
        n = fmt_double(num, sizeof num, kv->v.d);
        break;
    case WARD_KV_BOOL:
        n = kv->v.b ? 4 : 5;
        memcpy(num, kv->v.b ? "true" : "false", n);
        break;
    case WARD_KV_END:
    default:
        return;
    }
    put_key(ln, kv->key);
    put(ln, num, n);
    end_member(ln);
}

/* `"YYYY-MM-DDTHH:MM:SS.mmmZ"` in UTC; the part up to the seconds is cached per thread,
 * so gmtime_r runs once a second rather than once a line. */
static void put_ts(struct line *ln)
{
    static _Thread_local struct {
        int64_t sec;
        size_t len;
        char text[40];
    } cache = {.sec = INT64_MIN, .len = 0, .text = {0}};
    int64_t now = ward_clock_wall();
    int64_t sec = now / WARD_NS_PER_S;
    int64_t rem = now % WARD_NS_PER_S;
    int64_t ms;
    char frac[6];

    if (rem < 0) {
        rem += WARD_NS_PER_S;
        sec--;
    }
    ms = rem / WARD_NS_PER_MS;
    if (sec != cache.sec) {
        time_t t = (time_t)sec;
        struct tm tm;
        int n = -1;

        if (gmtime_r(&t, &tm) != NULL)
            n = snprintf(cache.text, sizeof cache.text, "%04d-%02d-%02dT%02d:%02d:%02d",
                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec);
        cache.len = n > 0 && (size_t)n < sizeof cache.text ? (size_t)n : 0;
        cache.sec = sec;
    }
    frac[0] = '.';
    frac[1] = (char)('0' + ms / 100);
    frac[2] = (char)('0' + ms / 10 % 10);
    frac[3] = (char)('0' + ms % 10);
    frac[4] = 'Z';
    frac[5] = '"';
    put(ln, "{\"ts\":\"", 7);
    put(ln, cache.text, cache.len);
    put(ln, frac, sizeof frac);
}

/* ts, level, service, msg, request_id, trace_id. */
static void put_head(struct line *ln, const struct ward_log *log, enum ward_log_level level,
                     const struct ward_log_ctx *ctx, const char *msg)
{
    const char *name = level_names[level];

    put_ts(ln);
    put(ln, ",\"level\":\"", 10);
    put(ln, name, strlen(name));
    put(ln, "\"", 1);
    end_member(ln);
    put(ln, log->service, log->service_len);
    end_member(ln);
    put_str_member(ln, "msg", msg != NULL ? msg : "");
    if (ctx != NULL && ctx->request_id != NULL)
        put_str_member(ln, "request_id", ctx->request_id);
    if (ctx != NULL && ctx->trace_id != NULL)
        put_str_member(ln, "trace_id", ctx->trace_id);
}

/* Closes the object and ends the line; a cut line says so. Uses the reserved room. */
static void line_finish(struct line *ln)
{
    static const char cut[] = ",\"truncated\":true}\n";

    if (ln->full) {
        ln->len = ln->safe;
        memcpy(ln->p + ln->len, cut, sizeof cut - 1);
        ln->len += sizeof cut - 1;
    } else {
        memcpy(ln->p + ln->len, "}\n", 2);
        ln->len += 2;
    }
}

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
    char stack[LINE_STACK];
    struct line ln = {.p = stack, .cap = sizeof stack};

    put_head(&ln, log, WARD_LOG_WARN, NULL, "log lines dropped: output too slow");
    put_kv(&ln, &WARD_I("dropped", dropped > INT64_MAX ? INT64_MAX : (int64_t)dropped));
    line_finish(&ln);
    write_all(log->fd, ln.p, ln.len);
    if (ln.heap)
        free(ln.p);
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

/* `,"service":"<escaped>"`, formatted once. */
static char *service_member(const char *service, size_t *len)
{
    char stack[LINE_STACK];
    struct line ln = {.p = stack, .cap = sizeof stack};
    char *out = NULL;

    put_str_member(&ln, "service", service != NULL ? service : "");
    out = malloc(ln.len + 1);
    if (out == NULL)
        goto out;
    memcpy(out, ln.p, ln.len);
    out[ln.len] = 0;
    *len = ln.len;
out:
    if (ln.heap)
        free(ln.p);
    return out;
}

struct ward_log *ward_log_new(const char *service, enum ward_log_level level, int fd)
{
    struct ward_log *log = NULL;
    pthread_condattr_t ca;
    sigset_t all;
    sigset_t old;
    int sync_made = 0;
    int rc;

    if (fd < 0 || (int)level < WARD_LOG_DEBUG || level > WARD_LOG_OFF)
        goto fail;
    log = calloc(1, sizeof *log);
    if (log == NULL)
        goto fail;
    atomic_init(&log->level, (int)level);
    log->fd = fd;
    log->service = service_member(service, &log->service_len);
    log->cur = malloc(BUF_CAP);
    log->spare = malloc(BUF_CAP);
    if (log->service == NULL || log->cur == NULL || log->spare == NULL)
        goto fail;
    if (pthread_mutex_init(&log->mu, NULL) != 0)
        goto fail;
    sync_made++;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    rc = pthread_cond_init(&log->wake, &ca);
    if (rc == 0) {
        sync_made++;
        rc = pthread_cond_init(&log->done, &ca);
    }
    pthread_condattr_destroy(&ca);
    if (rc != 0)
        goto fail;
    sync_made++;
    /* The writer must never take a signal meant for the process (SIGTERM, SIGINT);
     * blocked SIGPIPE also turns a closed reader into a plain EPIPE. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&log->thread, NULL, writer_main, log);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
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
        if (strcmp(text, level_names[i]) == 0) {
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

void ward_log_write(struct ward_log *log, enum ward_log_level level,
                    const struct ward_log_ctx *ctx, const char *msg, ...)
{
    char stack[LINE_STACK];
    struct line ln = {.p = stack, .cap = sizeof stack};
    struct ward_kv kv;
    va_list ap;

    if (!ward_log_enabled(log, level))
        return; /* nothing held yet */
    put_head(&ln, log, level, ctx, msg);
    va_start(ap, msg);
    for (kv = va_arg(ap, struct ward_kv); kv.type != WARD_KV_END; kv = va_arg(ap, struct ward_kv))
        put_kv(&ln, &kv);
    va_end(ap);
    line_finish(&ln);
    submit(log, level, ln.p, ln.len);
    if (ln.heap)
        free(ln.p);
}
