/* keys.h — ward-gateway's API keys: a keys file of "NAME KEY" lines (docs/gateway.md), and
 * a lookup that compares the presented key with every key in constant time. */
#ifndef GW_KEYS_H
#define GW_KEYS_H

#include <stddef.h>

#include <ward/err.h>

/* The shortest and longest key, in bytes; the longest name. */
#define GW_KEY_MIN 16
#define GW_KEY_MAX 1024
#define GW_KEY_NAME_MAX 64

/* One key. Only the key's SHA-256 is kept, never the key itself. */
struct gw_key {
    char *name;                 /* owned; the client identity in rate limits and logs */
    unsigned char digest[32];   /* SHA-256 of the key */
    int line;                   /* where it is in the file */
};

struct gw_keys {
    struct gw_key *v; /* owned; in file order */
    size_t n;
};

/* Loads the keys file at path: one key per line, "NAME KEY", separated by blanks; names
 * are letters, digits, '-', '_', '.', '@' (at most GW_KEY_NAME_MAX bytes); keys are
 * GW_KEY_MIN..GW_KEY_MAX printable ASCII characters without blanks. Blank lines and
 * lines whose first non-blank character is '#' are skipped; a file with no key is
 * valid (every authenticated route then answers 401). Returns OK and the keys in *out,
 * which the caller owns (gw_keys_free). On failure *out is NULL and errbuf (when errlen >
 * 0) holds "FILE:LINE: reason" ("FILE: reason" when it cannot be read): SYSTEM when the
 * file cannot be read, SYNTAX for a line without exactly two fields, a bad name, a key
 * too short, too long or with other characters, a duplicate name or key (naming the
 * line of the first); NOMEM; INVAL for NULL arguments. Keeps no state: a reload loads
 * anew and swaps when this returned OK. */
WARD_MUST_CHECK enum ward_err gw_keys_load(const char *path, struct gw_keys **out,
                                           char *errbuf, size_t errlen);

/* The name of the key equal to presented (a NUL-terminated header value), or NULL when
 * none is (also for NULL keys or presented). The presented key's SHA-256 is compared
 * with every key's, each with CRYPTO_memcmp, and the loop neither branches on a result
 * nor stops at a match: the time depends on the number of keys and the length of
 * presented only. The name is owned by keys. Pure; safe from many threads. */
const char *gw_keys_find(const struct gw_keys *keys, const char *presented);

/* Frees keys. NULL is a no-op. */
void gw_keys_free(struct gw_keys *keys);

#endif
