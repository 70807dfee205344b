/* log.h — structured logs: one JSON object per line (ts, level, service, msg,
 * request_id, trace_id, then key/values), buffered so a hot path never waits on write(2). */
#ifndef WARD_LOG_H
#define WARD_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include <ward/err.h>

enum ward_log_level { WARD_LOG_DEBUG, WARD_LOG_INFO, WARD_LOG_WARN, WARD_LOG_ERROR, WARD_LOG_OFF };

struct ward_log;

/* Correlation of a line with a request; either member may be NULL. */
struct ward_log_ctx {
    const char *request_id;
    const char *trace_id;
};

enum ward_kv_type { WARD_KV_END, WARD_KV_STR, WARD_KV_INT, WARD_KV_DBL, WARD_KV_BOOL };

/* One extra key/value of a line. Build them with the WARD_S/I/D/B macros. */
struct ward_kv {
    const char *key;
    enum ward_kv_type type;
    union {
        const char *s;
        int64_t i;
        double d;
        bool b;
    } v;
};

#define WARD_S(k, val) ((struct ward_kv){.key = (k), .type = WARD_KV_STR, .v.s = (val)})
#define WARD_I(k, val) ((struct ward_kv){.key = (k), .type = WARD_KV_INT, .v.i = (int64_t)(val)})
#define WARD_D(k, val) ((struct ward_kv){.key = (k), .type = WARD_KV_DBL, .v.d = (double)(val)})
#define WARD_B(k, val) ((struct ward_kv){.key = (k), .type = WARD_KV_BOOL, .v.b = (val)})
#define WARD_KV_LAST ((struct ward_kv){.key = 0, .type = WARD_KV_END})

/* A logger for service that writes to fd (usually 2) at level and above. Lines are
 * buffered and written by a background thread at least every 50 ms, when the buffer
 * fills, and at once for WARN and ERROR. Returns NULL when fd < 0, when level is not one
 * of enum ward_log_level, when out of memory or when the thread cannot start. The caller
 * owns it: ward_log_free() flushes and releases. */
struct ward_log *ward_log_new(const char *service, enum ward_log_level level, int fd);

/* Flushes what is buffered, stops the thread and frees. NULL is a no-op. */
void ward_log_free(struct ward_log *log);

/* True when a line at level would be written. Cheap: a relaxed atomic load. A NULL log
 * writes nothing. */
bool ward_log_enabled(const struct ward_log *log, enum ward_log_level level);

void ward_log_set_level(struct ward_log *log, enum ward_log_level level);

/* Writes everything buffered so far before returning. */
void ward_log_flush(struct ward_log *log);

/* A batch for the calling thread: until ward_log_batch_end, its DEBUG and INFO lines to
 * log are kept in a buffer of the thread's own and handed to the writer at once at the
 * end (or when 64 KiB are kept), one lock for all of them; WARN and ERROR still go at
 * once. An event loop opens one per turn, so that a line waits at most for the turn.
 * One log at a time per thread; ward_log_batch_release frees the thread's buffer (at
 * its end). */
void ward_log_batch_begin(struct ward_log *log);
void ward_log_batch_end(struct ward_log *log);
void ward_log_batch_release(void);

/* Parses "debug", "info", "warn", "error" or "off", in any case. */
WARD_MUST_CHECK enum ward_err ward_log_level_parse(const char *text, enum ward_log_level *out);

const char *ward_log_level_name(enum ward_log_level level);

/* Formats and buffers one line. The variadic part is a list of struct ward_kv ended by
 * WARD_KV_LAST; use the WARD_LOG macro, which checks the level before anything is
 * evaluated and appends the terminator. ctx may be NULL. Strings are escaped; a line
 * longer than 64 KiB is truncated. Thread-safe. */
void ward_log_write(struct ward_log *log, enum ward_log_level level,
                    const struct ward_log_ctx *ctx, const char *msg, ...);

#define WARD_LOG(log, level, ctx, ...)                                            \
    do {                                                                          \
        if (ward_log_enabled((log), (level)))                                     \
            ward_log_write((log), (level), (ctx), __VA_ARGS__, WARD_KV_LAST);     \
    } while (0)

#define WARD_DEBUG(log, ctx, ...) WARD_LOG(log, WARD_LOG_DEBUG, ctx, __VA_ARGS__)
#define WARD_INFO(log, ctx, ...) WARD_LOG(log, WARD_LOG_INFO, ctx, __VA_ARGS__)
#define WARD_WARN(log, ctx, ...) WARD_LOG(log, WARD_LOG_WARN, ctx, __VA_ARGS__)
#define WARD_ERROR(log, ctx, ...) WARD_LOG(log, WARD_LOG_ERROR, ctx, __VA_ARGS__)

#endif
