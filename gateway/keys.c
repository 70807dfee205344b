/* keys.c — loads ward-gateway's keys file and finds a presented API key in constant time. */
#include "keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

/* Writes "FILE:LINE: message" (line 0: "FILE: message"); returns rc. */
__attribute__((format(printf, 6, 7))) static enum ward_err
fail(enum ward_err rc, char *err, size_t errlen, const char *file, int line, const char *fmt,
     ...)
{
    va_list ap;
    int used;

    if (errlen == 0)
        return rc;
    if (line > 0)
        used = snprintf(err, errlen, "%s:%d: ", file, line);
    else
        used = snprintf(err, errlen, "%s: ", file);
    if (used >= 0 && (size_t)used < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + used, errlen - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '@';
}

/* Splits line (its end of line already cut) into up to 3 blank-separated fields, in
 * place; returns how many there are (3 meaning three or more). */
static int split(char *line, char *field[3])
{
    int n = 0;
    char *p = line;

    for (;;) {
        while (is_blank(*p))
            p++;
        if (*p == '\0' || n == 3)
            break;
        field[n++] = p;
        while (*p != '\0' && !is_blank(*p))
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
    return n;
}

void gw_keys_free(struct gw_keys *keys)
{
    if (keys == NULL)
        return;
    for (size_t i = 0; i < keys->n; i++)
        free(keys->v[i].name);
    free(keys->v);
    free(keys);
}

/* Checks one "NAME KEY" line's fields against the keys so far and appends it. */
static enum ward_err add_key(struct gw_keys *keys, size_t *cap, char *field[3], int nf,
                             const char *path, int lineno, char *err, size_t errlen)
{
    const char *name = field[0];
    const char *key = field[1];
    size_t klen;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char *copy;

    if (nf != 2)
        return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                    "expected \"NAME KEY\", found %s field%s", nf == 1 ? "one" : "more than two",
                    nf == 1 ? "" : "s");
    if (strlen(name) > GW_KEY_NAME_MAX)
        return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                    "name \"%.16s...\" is longer than %d characters", name, GW_KEY_NAME_MAX);
    for (const char *p = name; *p != '\0'; p++) {
        if (!name_char(*p))
            return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                        "name \"%s\" may hold only letters, digits, '-', '_', '.', '@'", name);
    }
    klen = strlen(key);
    if (klen < GW_KEY_MIN)
        return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                    "the key of %s is %zu characters long; at least %d are needed", name, klen,
                    GW_KEY_MIN);
    if (klen > GW_KEY_MAX)
        return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                    "the key of %s is longer than %d characters", name, GW_KEY_MAX);
    for (const char *p = key; *p != '\0'; p++) {
        if (*p < '!' || *p > '~')
            return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                        "the key of %s may hold only printable ASCII characters", name);
    }
    SHA256((const unsigned char *)key, klen, digest);
    for (size_t i = 0; i < keys->n; i++) {
        if (strcmp(keys->v[i].name, name) == 0)
            return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                        "duplicate name %s (first on line %d)", name, keys->v[i].line);
        if (memcmp(keys->v[i].digest, digest, sizeof digest) == 0)
            return fail(WARD_ERR_SYNTAX, err, errlen, path, lineno,
                        "the key of %s is already the key of %s (line %d)", name,
                        keys->v[i].name, keys->v[i].line);
    }
    if (keys->n == *cap) {
        size_t ncap = *cap == 0 ? 8 : *cap * 2;
        struct gw_key *v = realloc(keys->v, ncap * sizeof *v);
        if (v == NULL)
            return fail(WARD_ERR_NOMEM, err, errlen, path, 0, "out of memory");
        keys->v = v;
        *cap = ncap;
    }
    copy = strdup(name);
    if (copy == NULL)
        return fail(WARD_ERR_NOMEM, err, errlen, path, 0, "out of memory");
    keys->v[keys->n].name = copy;
    memcpy(keys->v[keys->n].digest, digest, sizeof digest);
    keys->v[keys->n].line = lineno;
    keys->n++;
    OPENSSL_cleanse(digest, sizeof digest);
    return WARD_ERR_OK;
}

enum ward_err gw_keys_load(const char *path, struct gw_keys **out, char *errbuf, size_t errlen)
{
    enum ward_err rc = WARD_ERR_INVAL;
    struct gw_keys *keys = NULL;
    FILE *f = NULL;
    char *line = NULL;
    size_t linecap = 0;
    size_t cap = 0;
    int lineno = 0;

    if (errbuf == NULL)
        errlen = 0;
    if (errlen > 0)
        errbuf[0] = '\0';
    if (path == NULL || out == NULL)
        goto out;
    *out = NULL;
    f = fopen(path, "r");
    if (f == NULL) {
        char buf[128];
        rc = fail(WARD_ERR_SYSTEM, errbuf, errlen, path, 0, "cannot read: %s",
                  strerror_r(errno, buf, sizeof buf));
        goto out;
    }
    keys = calloc(1, sizeof *keys);
    if (keys == NULL) {
        rc = fail(WARD_ERR_NOMEM, errbuf, errlen, path, 0, "out of memory");
        goto out;
    }
    rc = WARD_ERR_OK;
    for (;;) {
        char *field[3] = {NULL, NULL, NULL};
        ssize_t len;
        int nf;

        errno = 0;
        len = getline(&line, &linecap, f);
        if (len < 0) {
            if (errno == ENOMEM)
                rc = fail(WARD_ERR_NOMEM, errbuf, errlen, path, 0, "out of memory");
            else if (ferror(f))
                rc = fail(WARD_ERR_SYSTEM, errbuf, errlen, path, 0, "cannot read: I/O error");
            break;
        }
        lineno++;
        if ((size_t)len != strlen(line)) {
            rc = fail(WARD_ERR_SYNTAX, errbuf, errlen, path, lineno, "contains a NUL byte");
            break;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        nf = split(line, field);
        if (nf == 0 || field[0][0] == '#')
            continue;
        rc = add_key(keys, &cap, field, nf, path, lineno, errbuf, errlen);
        if (rc != WARD_ERR_OK)
            break;
    }
    if (rc == WARD_ERR_OK) {
        *out = keys;
        keys = NULL;
    }
out:
    if (line != NULL) {
        OPENSSL_cleanse(line, linecap);
        free(line);
    }
    if (f != NULL)
        fclose(f);
    gw_keys_free(keys);
    return rc;
}

const char *gw_keys_find(const struct gw_keys *keys, const char *presented)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    size_t found = 0; /* index + 1 of the match; 0 for none */

    if (keys == NULL || presented == NULL)
        return NULL;
    SHA256((const unsigned char *)presented, strlen(presented), digest);
    for (size_t i = 0; i < keys->n; i++) {
        /* mask is all ones on a match, zero otherwise, without a branch */
        size_t eq = (size_t)(CRYPTO_memcmp(digest, keys->v[i].digest, sizeof digest) == 0);
        size_t mask = (size_t)0 - eq;
        found |= mask & (i + 1);
    }
    return found == 0 ? NULL : keys->v[found - 1].name;
}
