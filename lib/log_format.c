/* log_format.c — the JSON line formatter of the logger: escaping, numbers, the cached
 * timestamp and truncation at 64 KiB, on a line that starts on the caller's stack. */
#include <ward/log.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/clock.h>

#include "log_int.h"

enum {
    LINE_MAX_BYTES = 64 * 1024, /* longer lines are truncated */
    LINE_RESERVE = 32,          /* room always kept to close a truncated line */
};

/* Grows the line so that n more bytes fit; false (and the line marked full) when the
 * 64 KiB limit or memory runs out. */
static bool line_grow(struct ward__log_line *ln, size_t n)
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

static inline bool line_fits(struct ward__log_line *ln, size_t n)
{
    if (!ln->full && ln->len + n + LINE_RESERVE <= ln->cap)
        return true;
    return line_grow(ln, n);
}

/* Appends all of s or nothing. */
static inline void put(struct ward__log_line *ln, const void *s, size_t n)
{
    if (line_fits(ln, n)) {
        memcpy(ln->p + ln->len, s, n);
        ln->len += n;
    }
}

/* Appends as much of s as fits: for plain ASCII inside a string, where a cut is harmless. */
static void put_part(struct ward__log_line *ln, const void *s, size_t n)
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
static void put_escaped(struct ward__log_line *ln, const char *s)
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
static void put_key(struct ward__log_line *ln, const char *key)
{
    put(ln, ",\"", 2);
    put_escaped(ln, key);
    put(ln, "\":", 2);
}

/* Ends a member: it is kept whole, or dropped whole when it did not fit. */
static void end_member(struct ward__log_line *ln)
{
    if (ln->full)
        ln->len = ln->safe;
    else
        ln->safe = ln->len;
}

/* A string member; a value cut by the limit is closed and kept. NULL is null. */
static void put_str_member(struct ward__log_line *ln, const char *key, const char *val)
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

void ward__log_kv(struct ward__log_line *ln, const struct ward_kv *kv)
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
static void put_ts(struct ward__log_line *ln)
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

void ward__log_head(struct ward__log_line *ln, const char *service, size_t service_len,
                    enum ward_log_level level, const struct ward_log_ctx *ctx,
                    const char *msg)
{
    const char *name = ward_log_level_name(level);

    put_ts(ln);
    put(ln, ",\"level\":\"", 10);
    put(ln, name, strlen(name));
    put(ln, "\"", 1);
    end_member(ln);
    put(ln, service, service_len);
    end_member(ln);
    put_str_member(ln, "msg", msg != NULL ? msg : "");
    if (ctx != NULL && ctx->request_id != NULL)
        put_str_member(ln, "request_id", ctx->request_id);
    if (ctx != NULL && ctx->trace_id != NULL)
        put_str_member(ln, "trace_id", ctx->trace_id);
}

/* Uses the reserved room, which is there even on a full line. */
void ward__log_finish(struct ward__log_line *ln)
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

void ward__log_line_release(struct ward__log_line *ln)
{
    if (ln->heap)
        free(ln->p);
}

/* Formatted once per logger, copied into every line. */
char *ward__log_service_member(const char *service, size_t *len)
{
    char stack[WARD__LOG_LINE_STACK];
    struct ward__log_line ln = {.p = stack, .cap = sizeof stack};
    char *out = NULL;

    put_str_member(&ln, "service", service != NULL ? service : "");
    out = malloc(ln.len + 1);
    if (out == NULL)
        goto out;
    memcpy(out, ln.p, ln.len);
    out[ln.len] = 0;
    *len = ln.len;
out:
    ward__log_line_release(&ln);
    return out;
}
