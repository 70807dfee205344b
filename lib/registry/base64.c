/* base64.c — standard base64 with padding (RFC 4648 §4), which etcd's JSON gateway uses
 * for every key and value. None of our dependencies exports it (libcurl keeps its own
 * private), and it is small enough to own. */
#include <stdlib.h>
#include <string.h>

#include "registry_int.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ward__b64_encode(const void *data, size_t n)
{
    const unsigned char *p = data;
    char *out, *o;

    if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
        return NULL;
    out = malloc((n + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    o = out;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        *o++ = alphabet[(v >> 18) & 63];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? alphabet[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

/* The 6-bit value of c, or -1. */
static int sextet(char c)
{
    const char *at = c != '\0' ? strchr(alphabet, c) : NULL;
    return at != NULL ? (int)(at - alphabet) : -1;
}

char *ward__b64_decode(const char *text, size_t *len)
{
    size_t n = strlen(text), pad = 0;
    char *out;

    if (n % 4 != 0)
        return NULL;
    while (pad < 2 && n > pad && text[n - 1 - pad] == '=')
        pad++;
    out = malloc(n / 4 * 3 + 1); /* + 1: a NUL after the bytes, for text values */
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int s[4];
        size_t real = i + 4 == n ? 4 - pad : 4; /* characters before the padding */
        unsigned v = 0;
        for (size_t j = 0; j < 4; j++) {
            s[j] = j < real ? sextet(text[i + j]) : 0;
            if (s[j] < 0 || (j >= real && text[i + j] != '='))
                goto bad;
            v = v << 6 | (unsigned)s[j];
        }
        out[o++] = (char)(v >> 16);
        if (real > 2)
            out[o++] = (char)(v >> 8 & 0xff);
        if (real > 3)
            out[o++] = (char)(v & 0xff);
    }
    out[o] = '\0';
    *len = o;
    return out;
bad:
    free(out);
    return NULL;
}
