/* common.c — what accounting-service's handlers share: refusing members a body must not
 * have, and giving a claimed key back. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"

enum ward_err acct_reject_unknown(const json_t *obj, const char *const *allowed, size_t n,
                                  const char *prefix, struct ward_problem **p)
{
    const char *key;
    json_t *value;
    if (!json_is_object(obj))
        return WARD_ERR_OK; /* the field parser names a body that is not an object */
    json_object_foreach((json_t *)(uintptr_t)obj, key, value) {
        (void)value;
        size_t i = 0;
        while (i < n && strcmp(allowed[i], key) != 0)
            i++;
        if (i < n)
            continue;
        /* prefix "/" key, with '~' and '/' escaped as RFC 6901 says */
        size_t plen = strlen(prefix), len = plen + 2;
        for (const char *k = key; *k != '\0'; k++)
            len += (*k == '~' || *k == '/') ? 2 : 1;
        char *ptr = malloc(len);
        if (ptr == NULL)
            return WARD_ERR_NOMEM;
        char *w = ptr + plen;
        memcpy(ptr, prefix, plen);
        *w++ = '/';
        for (const char *k = key; *k != '\0'; k++) {
            if (*k == '~' || *k == '/') {
                *w++ = '~';
                *w++ = *k == '~' ? '0' : '1';
            } else {
                *w++ = *k;
            }
        }
        *w = '\0';
        enum ward_err err = WARD_ERR_OK;
        if (*p == NULL &&
            (*p = ward_problem_new(WARD_PROBLEM_VALIDATION, "field %s: is not a member of this request", ptr)) == NULL)
            err = WARD_ERR_NOMEM;
        if (err == WARD_ERR_OK)
            err = ward_problem_add_error(*p, ptr, "is not a member of this request");
        free(ptr);
        if (err != WARD_ERR_OK)
            return err;
    }
    return WARD_ERR_OK;
}

void acct_release(struct ward_idem *idem, const struct ward_idem_claim *c)
{
    /* a key that cannot be released now runs out with its lease */
    if (ward_idem_release(idem, c) != WARD_ERR_OK)
        return;
}
