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

bool gw_buf_int(struct gw_buf *b, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    return gw_buf_add(b, tmp + i, sizeof tmp - i);
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

/* Indexes the block: every pair's offsets and its name's length. */
static void index_block(struct gw_headers *h)
{
    const char *base = h->buf.data, *p = base, *end = base + h->buf.len;
    h->nidx = 0;
    h->indexed = true;
    while (p != NULL && p < end) {
        size_t nlen = strlen(p);
        const char *value = p + nlen + 1;
        if (value >= end)
            break;
        if (h->nidx == GW_HEADERS_INDEXED || h->buf.len > UINT32_MAX) {
            h->indexed = false;
            return;
        }
        h->idx[h->nidx].name = (uint32_t)(p - base);
        h->idx[h->nidx].value = (uint32_t)(value - base);
        h->idx[h->nidx].nlen = (uint32_t)nlen;
        h->nidx++;
        p = value + strlen(value) + 1;
    }
}

bool gw_headers_end(struct gw_headers *h)
{
    if (h->last == 1 && !piece(h, 2, "", 0)) /* a name with no value callback */
        return false;
    if (h->last != 0 && !gw_buf_add(&h->buf, "", 1))
        return false;
    h->last = 0;
    index_block(h);
    return true;
}

void gw_headers_each(const struct gw_headers *h,
                     bool (*fn)(const char *name, size_t nlen, const char *value, void *arg),
                     void *arg)
{
    if (h->indexed) {
        for (size_t i = 0; i < h->nidx; i++)
            if (!fn(h->buf.data + h->idx[i].name, h->idx[i].nlen, h->buf.data + h->idx[i].value, arg))
                return;
        return;
    }
    const char *p = h->buf.data, *end = p + h->buf.len;
    while (p != NULL && p < end) {
        const char *name = p;
        size_t nlen = strlen(name);
        const char *value = name + nlen + 1;
        if (value >= end)
            return;
        p = value + strlen(value) + 1;
        if (!fn(name, nlen, value, arg))
            return;
    }
}

const char *gw_headers_get(const struct gw_headers *h, const char *name)
{
    size_t nlen = strlen(name);
    if (h->indexed) {
        for (size_t i = 0; i < h->nidx; i++)
            if (h->idx[i].nlen == nlen && strcasecmp(h->buf.data + h->idx[i].name, name) == 0)
                return h->buf.data + h->idx[i].value;
        return NULL;
    }
    const char *p = h->buf.data, *end = p + h->buf.len;
    while (p != NULL && p < end) {
        size_t plen = strlen(p);
        const char *value = p + plen + 1;
        if (value >= end)
            return NULL;
        if (plen == nlen && strcasecmp(p, name) == 0)
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
    h->nidx = 0;
    h->indexed = true;
}
