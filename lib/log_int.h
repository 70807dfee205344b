/* log_int.h — what log.c (logger, buffers, writer thread) and log_format.c (the JSON
 * line formatter) share; library-internal. */
#ifndef WARD_LOG_INT_H
#define WARD_LOG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <ward/log.h>

enum { WARD__LOG_LINE_STACK = 1024 }; /* most lines fit on the caller's stack */

/* One line being formatted. Start it as {.p = stack, .cap = sizeof stack} over a
 * WARD__LOG_LINE_STACK buffer; the formatter moves it to the heap when it grows, so
 * release it with ward__log_line_release(). Content never goes past cap - reserve, so
 * there is always room to close a string and the object after a truncation. */
struct ward__log_line {
    char *p;
    size_t len;
    size_t cap;
    size_t safe; /* length at the end of the last complete member */
    bool heap;
    bool full; /* truncated: nothing more is added */
};

/* Opens the line: ts, level, service, msg, request_id, trace_id. service is the member
 * made by ward__log_service_member(); ctx and msg may be NULL; level must be a level
 * below WARD_LOG_OFF. */
void ward__log_head(struct ward__log_line *ln, const char *service, size_t service_len,
                    enum ward_log_level level, const struct ward_log_ctx *ctx,
                    const char *msg);

/* Appends one key/value member; a NULL key or WARD_KV_END adds nothing. */
void ward__log_kv(struct ward__log_line *ln, const struct ward_kv *kv);

/* Closes the object and ends the line with '\n'; a cut line gets "truncated":true. */
void ward__log_finish(struct ward__log_line *ln);

/* Frees what the line allocated, if anything. */
void ward__log_line_release(struct ward__log_line *ln);

/* `,"service":"<escaped>"` (NULL counts as ""), NUL-terminated, its length in *len.
 * The caller owns it and frees it with free(); NULL when out of memory. */
char *ward__log_service_member(const char *service, size_t *len);

#endif
