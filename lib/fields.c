/* fields.c — one call that validates a JSON body against a handler's list of members. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/fields.h>

/* Room for the longest detail (66 bytes: the one about significant digits). */
#define DETAIL_SIZE 96

/* What became of one member: bad, and why. */
struct verdict {
    bool bad;
    char detail[DETAIL_SIZE];
};

/* Per-call state: one verdict per field, kept in field order so that the problem lists
 * errors in the order the handler declared its members, whatever order they were
 * checked in. */
struct run {
    const json_t *root;
    const struct ward_field *fields;
    size_t n;
    struct verdict *v;
};

/* Marks v bad with a formatted detail; always returns false, the verdict of the check. */
static bool fail(struct verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct verdict *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->detail, sizeof v->detail, fmt, ap);
    va_end(ap);
    v->bad = true;
    return false;
}

/* "/" + name with '~' and '/' escaped as RFC 6901 says (~0, ~1). */
static char *pointer_of(const char *name)
{
    size_t len = 1;
    char *s, *w;

    for (const char *c = name; *c != '\0'; c++)
        len += (*c == '~' || *c == '/') ? 2 : 1;
    s = malloc(len + 1);
    if (s == NULL)
        return NULL;
    w = s;
    *w++ = '/';
    for (const char *c = name; *c != '\0'; c++) {
        if (*c == '~' || *c == '/') {
            *w++ = '~';
            *w++ = *c == '~' ? '0' : '1';
        } else {
            *w++ = *c;
        }
    }
    *w = '\0';
    return s;
}

/* A string member's text, or NULL when it is not a string or hides a NUL (\u0000). */
static const char *plain_string(const json_t *value)
{
    const char *s;

    if (!json_is_string(value))
        return NULL;
    s = json_string_value(value);
    return strlen(s) == json_string_length(value) ? s : NULL;
}

static bool check_string(const struct ward_field *f, const json_t *value, struct verdict *v)
{
    const char *s;
    size_t len;

    if (!json_is_string(value))
        return fail(v, "must be a string");
    s = plain_string(value);
    if (s == NULL)
        return fail(v, "must not contain NUL characters");
    len = json_string_length(value);
    if (len == 0 && !f->allow_empty)
        return fail(v, "must not be empty");
    if (f->max_len > 0 && len > f->max_len)
        return fail(v, "must be at most %zu bytes", f->max_len);
    *(const char **)f->dest = s;
    return true;
}

static bool check_int(const struct ward_field *f, const json_t *value, struct verdict *v)
{
    int64_t i;

    if (!json_is_integer(value))
        return fail(v, "must be an integer");
    i = (int64_t)json_integer_value(value);
    if (f->min < f->max && (i < f->min || i > f->max))
        return fail(v, "must be between %" PRId64 " and %" PRId64, f->min, f->max);
    *(int64_t *)f->dest = i;
    return true;
}

static bool check_bool(const struct ward_field *f, const json_t *value, struct verdict *v)
{
    if (!json_is_boolean(value))
        return fail(v, "must be true or false");
    *(bool *)f->dest = json_is_true(value);
    return true;
}

static bool check_currency(const struct ward_field *f, const json_t *value, struct verdict *v)
{
    const struct ward_currency *cur;
    const char *s = plain_string(value);

    if (s == NULL || strlen(s) != 3 || strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != 3)
        return fail(v, "must be an ISO 4217 currency code");
    cur = ward_currency_find(s);
    if (cur == NULL)
        return fail(v, "unknown currency \"%s\"", s);
    *(const struct ward_currency **)f->dest = cur;
    return true;
}

/* The verdict on the currency field whose dest the amount reads, or NULL when the
 * amount's currency lives outside this spec. */
static const struct verdict *currency_verdict(const struct run *r, const struct ward_field *f)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->fields[i].type == WARD_FIELD_CURRENCY &&
            (const void *)r->fields[i].dest == (const void *)f->currency)
            return &r->v[i];
    }
    return NULL;
}

static bool check_amount(const struct run *r, const struct ward_field *f, const json_t *value,
                         struct verdict *v)
{
    const struct verdict *cv = currency_verdict(r, f);
    const struct ward_currency *cur = *f->currency;
    int64_t minor;
    enum ward_err err;

    if (!json_is_integer(value) && !json_is_real(value) && !json_is_string(value))
        return fail(v, "must be a number or a decimal string");
    /* A bad currency is reported on its own member, once, not again on each amount. */
    if (cv != NULL && cv->bad)
        return true;
    if (cur == NULL)
        return fail(v, "needs a currency; none was given");
    err = ward_money_from_json(value, cur, f->flags, &minor);
    switch (err) {
    case WARD_ERR_OK:
        *(int64_t *)f->dest = minor;
        return true;
    case WARD_ERR_NEGATIVE:
        return fail(v, "must not be negative");
    case WARD_ERR_PRECISION:
        return fail(v, "has more decimals than %s allows (%d)", cur->code, cur->exponent);
    case WARD_ERR_OVERFLOW:
        return fail(v, "is too large");
    case WARD_ERR_SYNTAX:
        return fail(v, "is not a valid decimal amount");
    case WARD_ERR_DIGITS:
        return fail(v, "has more than 15 significant digits; send it as a decimal string");
    case WARD_ERR_NOT_FINITE:
        return fail(v, "must be a finite number");
    default:
        return fail(v, "%s", ward_strerror(err));
    }
}

/* Checks field i and records its verdict; stores through dest when the value is good. */
static void check(struct run *r, size_t i)
{
    const struct ward_field *f = &r->fields[i];
    const json_t *value = json_object_get(r->root, f->name);
    bool given = value != NULL && !json_is_null(value);
    struct verdict *v = &r->v[i];

    if (f->present != NULL)
        *f->present = given;
    if (!given) {
        if (f->required)
            fail(v, "is required");
        return;
    }
    switch (f->type) {
    case WARD_FIELD_STRING:
        check_string(f, value, v);
        break;
    case WARD_FIELD_INT:
        check_int(f, value, v);
        break;
    case WARD_FIELD_BOOL:
        check_bool(f, value, v);
        break;
    case WARD_FIELD_CURRENCY:
        check_currency(f, value, v);
        break;
    case WARD_FIELD_AMOUNT:
        check_amount(r, f, value, v);
        break;
    }
}

/* A spec the handler got wrong is our bug, not the client's: reject it before looking
 * at the body. */
static bool spec_ok(const struct ward_field *fields, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct ward_field *f = &fields[i];

        if (f->name == NULL || f->dest == NULL || f->type > WARD_FIELD_AMOUNT)
            return false;
        if (f->type == WARD_FIELD_AMOUNT && f->currency == NULL)
            return false;
    }
    return true;
}

/* The problem naming every bad member, in field order; NULL when out of memory. */
static struct ward_problem *build_problem(const struct run *r, size_t nbad)
{
    struct ward_problem *p = NULL;
    char *ptr = NULL;
    size_t first = 0;

    while (!r->v[first].bad)
        first++;
    ptr = pointer_of(r->fields[first].name);
    if (ptr == NULL)
        goto fail;
    if (nbad == 1)
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, "field %s: %s", ptr, r->v[first].detail);
    else
        p = ward_problem_new(WARD_PROBLEM_VALIDATION, "%zu fields are invalid", nbad);
    if (p == NULL)
        goto fail;
    for (size_t i = first; i < r->n; i++) {
        if (!r->v[i].bad)
            continue;
        free(ptr);
        ptr = pointer_of(r->fields[i].name);
        if (ptr == NULL)
            goto fail;
        if (ward_problem_add_error(p, ptr, "%s", r->v[i].detail) != WARD_ERR_OK)
            goto fail;
    }
    free(ptr);
    return p;
fail:
    free(ptr);
    ward_problem_free(p);
    return NULL;
}

static enum ward_err not_an_object(struct ward_problem **problem)
{
    struct ward_problem *p;

    p = ward_problem_new(WARD_PROBLEM_VALIDATION, "the request body must be a JSON object");
    if (p == NULL)
        return WARD_ERR_NOMEM;
    if (ward_problem_add_error(p, "", "must be a JSON object") != WARD_ERR_OK) {
        ward_problem_free(p);
        return WARD_ERR_NOMEM;
    }
    *problem = p;
    return WARD_ERR_INVAL;
}

enum ward_err ward_fields_parse(const json_t *root, const struct ward_field *fields, size_t n,
                                struct ward_problem **problem)
{
    struct run r = {.root = root, .fields = fields, .n = n, .v = NULL};
    enum ward_err err = WARD_ERR_NOMEM;
    size_t nbad = 0;

    if (problem == NULL)
        return WARD_ERR_INVAL;
    *problem = NULL;
    if ((fields == NULL && n > 0) || !spec_ok(fields, n)) {
        *problem = ward_problem_new(WARD_PROBLEM_INTERNAL, "invalid field specification");
        return *problem == NULL ? WARD_ERR_NOMEM : WARD_ERR_INVAL;
    }
    if (!json_is_object(root))
        return not_an_object(problem);
    if (n == 0)
        return WARD_ERR_OK;
    r.v = calloc(n, sizeof *r.v);
    if (r.v == NULL)
        goto out;
    /* Currencies first: amounts read their currency from another field's dest. */
    for (size_t i = 0; i < n; i++) {
        if (fields[i].type == WARD_FIELD_CURRENCY)
            check(&r, i);
    }
    for (size_t i = 0; i < n; i++) {
        if (fields[i].type != WARD_FIELD_CURRENCY)
            check(&r, i);
    }
    for (size_t i = 0; i < n; i++)
        nbad += r.v[i].bad;
    if (nbad == 0) {
        err = WARD_ERR_OK;
        goto out;
    }
    *problem = build_problem(&r, nbad);
    err = *problem == NULL ? WARD_ERR_NOMEM : WARD_ERR_INVAL;
out:
    free(r.v);
    return err;
}
