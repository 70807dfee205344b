/* common.c — what accounting-service's handlers share: answering a definite problem
 * under an Idempotency-Key, and refusing members a body must not have. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "accounting.h"

void acct_answer_problem(struct ward_req *req, struct ward_idem *idem,
                         const struct ward_idem_claim *c, struct ward_problem *p)
{
    int status = p != NULL ? ward_problem_status(p) : 500;
    char *body = p != NULL ? acct_dump(ward_problem_to_json(p, ward_req_path(req), ward_req_id(req))) : NULL;
    ward_problem_free(p);
    if (body == NULL) {
        /* no definite answer to keep: let a retry run anew */
        acct_release(idem, c);
        ward_req_respond_problem(req, NULL);
        return;
    }
    /* a failure to record it only means a retry computes the same answer again */
    if (ward_idem_finish(idem, c, status, "application/problem+json", body, strlen(body)) != WARD_ERR_OK)
        acct_release(idem, c);
    ward_req_respond(req, status, "application/problem+json", body, strlen(body));
    free(body);
}

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

void acct_store_failed(struct ward_req *req, struct ward_idem *idem, const struct ward_idem_claim *c,
                       enum ward_err err)
{
    acct_release(idem, c);
    if (err == WARD_ERR_CONFLICT) { /* our lease on the key ran out and another took it */
        if (ward_req_set_header(req, "Retry-After", "1") != WARD_ERR_OK) {
            ward_req_respond_problem(req, NULL);
            return;
        }
        ward_req_fail(req, WARD_PROBLEM_IDEMPOTENCY_IN_FLIGHT,
                      "another request with this Idempotency-Key took over; retry");
        return;
    }
    ward_store_respond_error(req, err);
}

void acct_release(struct ward_idem *idem, const struct ward_idem_claim *c)
{
    /* a key that cannot be released now runs out with its lease */
    if (ward_idem_release(idem, c) != WARD_ERR_OK)
        return;
}
