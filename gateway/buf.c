/* buf.c — the engine's growable buffers, and header blocks kept as "name\0value\0"
 * pairs as http-parser hands them over, in pieces. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"

bool gw_buf_reserve(struct gw_buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return false;
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return false;
    b->data = d;
    b->cap = cap;
    return true;
}

bool gw_buf_add(struct gw_buf *b, const void *p, size_t n)
{
    if (!gw_buf_reserve(b, n))
        return false;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return true;
}

bool gw_buf_str(struct gw_buf *b, const char *s)
{
    return gw_buf_add(b, s, strlen(s));
}

void gw_buf_free(struct gw_buf *b)
{
    free(b->data);
    *b = (struct gw_buf){0};
}

/* ---- headers ------------------------------------------------------------------------- */

static bool piece(struct gw_headers *h, int kind, const char *at, size_t n)
{
    if (h->last != kind && h->last != 0 && !gw_buf_add(&h->buf, "", 1))
        return false; /* the NUL that ends the name or value before */
    if (kind == 1 && h->last != 1)
        h->count++;
    h->last = kind;
    return gw_buf_add(&h->buf, at, n);
}

bool gw_headers_field(struct gw_headers *h, const char *at, size_t n)
{
    return piece(h, 1, at, n);
}

bool gw_headers_value(struct gw_headers *h, const char *at, size_t n)
{
    return piece(h, 2, at, n);
}

bool gw_headers_end(struct gw_headers *h)
{
    if (h->last == 1 && !piece(h, 2, "", 0)) /* a name with no value callback */
        return false;
    if (h->last != 0 && !gw_buf_add(&h->buf, "", 1))
        return false;
    h->last = 0;
    return true;
}

void gw_headers_each(const struct gw_headers *h,
                     bool (*fn)(const char *name, const char *value, void *arg), void *arg)
{
    const char *p = h->buf.data, *end = p + h->buf.len;
    while (p != NULL && p < end) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        if (value >= end)
            return;
        p = value + strlen(value) + 1;
        if (!fn(name, value, arg))
            return;
    }
}

const char *gw_headers_get(const struct gw_headers *h, const char *name)
{
    const char *p = h->buf.data, *end = p + h->buf.len;
    while (p != NULL && p < end) {
        const char *value = p + strlen(p) + 1;
        if (value >= end)
            return NULL;
        if (strcasecmp(p, name) == 0)
            return value;
        p = value + strlen(value) + 1;
    }
    return NULL;
}

void gw_headers_reset(struct gw_headers *h)
{
    h->buf.len = 0;
    h->last = 0;
    h->count = 0;
}
