/* id.c — resource IDs: a prefix and 128 bits from getrandom(2) written in base62, so
 * that they fit in URLs unescaped and cannot be guessed or enumerated. */
#include <ward/id.h>

#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#define DIGITS 22 /* 62^22 > 2^128 */

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static bool prefix_ok(const char *prefix)
{
    size_t n = prefix != NULL ? strlen(prefix) : 0;
    if (n == 0 || n > 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if (prefix[i] < 'a' || prefix[i] > 'z')
            return false;
    return true;
}

enum ward_err ward_id_new(const char *prefix, char *out, size_t size)
{
    unsigned char r[16];
    if (!prefix_ok(prefix) || out == NULL || size < WARD_ID_MAX)
        return WARD_ERR_INVAL;
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return WARD_ERR_SYSTEM;
    size_t n = strlen(prefix);
    memcpy(out, prefix, n);
    out[n] = '_';
    /* the 128-bit number, divided by 62 digit by digit (big-endian bytes) */
    for (int d = DIGITS - 1; d >= 0; d--) {
        unsigned rem = 0;
        for (int i = 0; i < 16; i++) {
            unsigned cur = rem * 256 + r[i];
            r[i] = (unsigned char)(cur / 62);
            rem = cur % 62;
        }
        out[n + 1 + (size_t)d] = base62[rem];
    }
    out[n + 1 + DIGITS] = '\0';
    return WARD_ERR_OK;
}

bool ward_id_valid(const char *prefix, const char *s)
{
    if (!prefix_ok(prefix) || s == NULL)
        return false;
    size_t n = strlen(prefix);
    if (strncmp(s, prefix, n) != 0 || s[n] != '_' || strlen(s + n + 1) != DIGITS)
        return false;
    for (const char *p = s + n + 1; *p != '\0'; p++)
        if (strchr(base62, *p) == NULL)
            return false;
    return true;
}
