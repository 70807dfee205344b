/* page.c — cursor pagination: the cursor is "c" and the last row's sequence number in
 * base 36, opaque to clients and checked strictly, so that a forged one is a 400. */
#include <ward/page.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/problem.h>

/* A decimal or base-36 number with nothing around it, in [min, max]. */
static bool parse_int(const char *s, int base, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    if (s == NULL || (unsigned char)*s <= ' ' || *s == '+' || *s == '-')
        return false;
    errno = 0;
    long long v = strtoll(s, &end, base);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static bool fail(struct ward_req *req, const char *param, const char *detail)
{
    struct ward_problem *p = ward_problem_new(WARD_PROBLEM_VALIDATION, "bad query parameter %s", param);
    char pointer[32];
    snprintf(pointer, sizeof pointer, "/%s", param); /* the parameter, as a member name */
    if (p != NULL && ward_problem_add_error(p, pointer, "%s", detail) != WARD_ERR_OK) {
        ward_problem_free(p);
        p = NULL;
    }
    ward_req_respond_problem(req, p);
    return false;
}

bool ward_page_parse(struct ward_req *req, struct ward_page *page)
{
    const char *limit = ward_req_query(req, "limit"), *cursor = ward_req_query(req, "cursor");
    *page = (struct ward_page){.limit = WARD_PAGE_DEFAULT};
    if (limit != NULL && !parse_int(limit, 10, 1, WARD_PAGE_MAX, &page->limit))
        return fail(req, "limit", "must be a whole number from 1 to 100");
    if (cursor != NULL &&
        (cursor[0] != 'c' || !parse_int(cursor + 1, 36, 1, INT64_MAX, &page->after)))
        return fail(req, "cursor", "must be a next_cursor this service returned");
    return true;
}

json_t *ward_page_json(json_t *data, bool more, int64_t last_seq)
{
    json_t *o = json_object();
    if (o == NULL || data == NULL || json_object_set_new(o, "data", data) != 0) {
        if (o == NULL || data == NULL)
            json_decref(data);
        json_decref(o);
        return NULL;
    }
    if (more) {
        char buf[24] = "c", digits[16];
        const char *b36 = "0123456789abcdefghijklmnopqrstuvwxyz";
        int n = 0;
        for (uint64_t v = (uint64_t)last_seq; v > 0 || n == 0; v /= 36)
            digits[n++] = b36[v % 36];
        for (int i = 0; i < n; i++)
            buf[1 + i] = digits[n - 1 - i];
        buf[1 + n] = '\0';
        if (json_object_set_new(o, "next_cursor", json_string(buf)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}
