/* trace.c — parsing and starting W3C traceparent values (Trace Context level 1). */
#include "trace.h"

#include <string.h>

#include "random.h"

/* 1 for the digits of lowercase hex: every traceparent a service receives is checked, so
 * a table rather than two ranges per byte. */
static const unsigned char hex_digit[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
};

static bool lower_hex(const char *s, size_t n)
{
    unsigned ok = 1;
    for (size_t i = 0; i < n; i++) /* no early exit: the loop runs branch-free */
        ok &= hex_digit[(unsigned char)s[i]];
    return ok != 0;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

/* version "00" is exactly 55 bytes; a later version may append "-..." fields, which we
 * drop (the spec says to parse the known prefix). "ff" is forbidden. */
static bool parse(struct ward_trace *t, const char *h)
{
    size_t len = strlen(h);
    if (len < WARD_TRACEPARENT_LEN || !lower_hex(h, 2) || memcmp(h, "ff", 2) == 0)
        return false;
    if (memcmp(h, "00", 2) == 0 && len != WARD_TRACEPARENT_LEN)
        return false;
    if (len > WARD_TRACEPARENT_LEN && h[WARD_TRACEPARENT_LEN] != '-')
        return false;
    if (h[2] != '-' || h[35] != '-' || h[52] != '-')
        return false;
    if (!lower_hex(h + 3, 32) || all_zero(h + 3, 32) || !lower_hex(h + 36, 16) ||
        all_zero(h + 36, 16) || !lower_hex(h + 53, 2))
        return false;
    memcpy(t->trace_id, h + 3, 32);
    t->trace_id[32] = '\0';
    memcpy(t->parent_id, h + 36, 16);
    t->parent_id[16] = '\0';
    memcpy(t->flags, h + 53, 2);
    t->flags[2] = '\0';
    return true;
}

bool ward__trace_continue(struct ward_trace *t, const char *header)
{
    bool continued = header != NULL && parse(t, header);
    if (!continued) {
        ward__random_hex(t->trace_id, 16);
        t->parent_id[0] = '\0';
        memcpy(t->flags, "01", 3);
    }
    ward__random_hex(t->span_id, 8);
    /* "00-" trace "-" span "-" flags, assembled without printf on every request */
    char *p = t->traceparent;
    memcpy(p, "00-", 3);
    memcpy(p + 3, t->trace_id, WARD_TRACE_ID_LEN);
    p[35] = '-';
    memcpy(p + 36, t->span_id, WARD_SPAN_ID_LEN);
    p[52] = '-';
    memcpy(p + 53, t->flags, 3);
    return continued;
}

bool ward__request_id_valid(const char *value)
{
    size_t n = 0;
    for (; value[n] != '\0'; n++) {
        unsigned char c = (unsigned char)value[n];
        if (c < 0x21 || c > 0x7e || n >= WARD_REQUEST_ID_MAX)
            return false;
    }
    return n > 0;
}

void ward__trace_child(const char *traceparent, char out[WARD_TRACEPARENT_LEN + 1])
{
    struct ward_trace t;
    ward__trace_continue(&t, traceparent);
    memcpy(out, t.traceparent, WARD_TRACEPARENT_LEN + 1);
}

/* ---- the public names (include/ward/trace.h) ---------------------------------------- */

bool ward_trace_continue(struct ward_trace *t, const char *header)
{
    return ward__trace_continue(t, header);
}

void ward_trace_child(const char *traceparent, char out[WARD_TRACEPARENT_LEN + 1])
{
    ward__trace_child(traceparent, out);
}

bool ward_request_id_valid(const char *value)
{
    return ward__request_id_valid(value);
}

void ward_trace_span(const struct ward_trace *t, char out[WARD_TRACEPARENT_LEN + 1])
{
    memcpy(out, t->traceparent, WARD_TRACEPARENT_LEN + 1);
    ward__random_hex(out + 36, 8); /* overwrites the span and its NUL: the '-' follows */
    out[52] = '-';
}

void ward_request_id_new(char out[33])
{
    ward__random_hex(out, 16);
}
