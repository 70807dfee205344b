/* problem.c — RFC 9457 problem details with an `errors` member of JSON Pointers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/problem.h>

struct ward_problem {
    enum ward_problem_type type;
    char *detail;   /* owned; NULL when the problem has none */
    json_t *errors; /* owned array of {"pointer", "detail"} */
};

struct type_info {
    const char *uri;
    const char *title;
    int status;
};

static const struct type_info types[WARD_PROBLEM__COUNT] = {
#define WARD__PROBLEM_INFO(name, slug, status, title) \
    [WARD_PROBLEM_##name] = {WARD_PROBLEM_BASE slug, title, status},
    WARD_PROBLEMS(WARD__PROBLEM_INFO)
#undef WARD__PROBLEM_INFO
};

/* An out-of-range type is our own bug; answering it as an internal error is the
 * recovery that never sends a client a wrong 4xx. */
static const struct type_info *info(enum ward_problem_type type)
{
    if ((unsigned)type >= WARD_PROBLEM__COUNT)
        type = WARD_PROBLEM_INTERNAL;
    return &types[type];
}

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* A heap copy of the formatted text, however long; NULL when out of memory. */
static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    char *s = NULL;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        goto out;
    s = malloc((size_t)n + 1);
    if (s == NULL)
        goto out;
    vsnprintf(s, (size_t)n + 1, fmt, ap);
out:
    return s;
}

/* A JSON string of text. Details may quote client input, which jansson rejects when it
 * is not UTF-8; such bytes become '?' rather than losing the whole problem. */
static json_t *text_json(const char *text)
{
    json_t *j = json_string(text);
    char *copy = NULL;

    if (j != NULL)
        goto out;
    copy = strdup(text);
    if (copy == NULL)
        goto out;
    for (char *c = copy; *c != '\0'; c++) {
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    }
    j = json_string(copy);
out:
    free(copy);
    return j;
}

struct ward_problem *ward_problem_new(enum ward_problem_type type, const char *detail_fmt, ...)
{
    struct ward_problem *p = calloc(1, sizeof *p);
    va_list ap;

    if (p == NULL)
        goto fail;
    p->type = (unsigned)type < WARD_PROBLEM__COUNT ? type : WARD_PROBLEM_INTERNAL;
    p->errors = json_array();
    if (p->errors == NULL)
        goto fail;
    if (detail_fmt != NULL) {
        va_start(ap, detail_fmt);
        p->detail = vformat(detail_fmt, ap);
        va_end(ap);
        if (p->detail == NULL)
            goto fail;
    }
    return p;
fail:
    ward_problem_free(p);
    return NULL;
}

void ward_problem_free(struct ward_problem *p)
{
    if (p == NULL)
        return;
    free(p->detail);
    json_decref(p->errors);
    free(p);
}

enum ward_err ward_problem_add_error(struct ward_problem *p, const char *pointer,
                                     const char *detail_fmt, ...)
{
    enum ward_err err = WARD_ERR_NOMEM;
    json_t *entry = NULL, *ptr = NULL;
    char *detail = NULL;
    va_list ap;

    if (p == NULL || pointer == NULL || detail_fmt == NULL) {
        err = WARD_ERR_INVAL;
        goto out;
    }
    va_start(ap, detail_fmt);
    detail = vformat(detail_fmt, ap);
    va_end(ap);
    if (detail == NULL)
        goto out;
    entry = json_object();
    ptr = text_json(pointer);
    if (entry == NULL || ptr == NULL)
        goto out;
    if (json_object_set_new(entry, "pointer", ptr) != 0) {
        ptr = NULL; /* set_new consumed it even on failure */
        goto out;
    }
    ptr = NULL;
    if (json_object_set_new(entry, "detail", text_json(detail)) != 0)
        goto out;
    if (json_array_append(p->errors, entry) != 0)
        goto out;
    err = WARD_ERR_OK;
out:
    json_decref(ptr);
    json_decref(entry);
    free(detail);
    return err;
}

size_t ward_problem_error_count(const struct ward_problem *p)
{
    return p == NULL ? 0 : json_array_size(p->errors);
}

enum ward_problem_type ward_problem_type(const struct ward_problem *p)
{
    return p == NULL ? WARD_PROBLEM_INTERNAL : p->type;
}

int ward_problem_status(const struct ward_problem *p)
{
    return info(ward_problem_type(p))->status;
}

/* Members go in in the order a reader wants them; jansson keeps insertion order. */
json_t *ward_problem_to_json(const struct ward_problem *p, const char *instance,
                             const char *request_id)
{
    const struct type_info *t;
    json_t *o = NULL;

    if (p == NULL)
        goto fail;
    t = info(p->type);
    o = json_object();
    if (o == NULL)
        goto fail;
    if (json_object_set_new(o, "type", json_string(t->uri)) != 0 ||
        json_object_set_new(o, "title", json_string(t->title)) != 0 ||
        json_object_set_new(o, "status", json_integer(t->status)) != 0)
        goto fail;
    if (p->detail != NULL && json_object_set_new(o, "detail", text_json(p->detail)) != 0)
        goto fail;
    if (instance != NULL && json_object_set_new(o, "instance", text_json(instance)) != 0)
        goto fail;
    if (request_id != NULL && json_object_set_new(o, "request_id", text_json(request_id)) != 0)
        goto fail;
    if (json_array_size(p->errors) > 0 &&
        json_object_set_new(o, "errors", json_deep_copy(p->errors)) != 0)
        goto fail;
    return o;
fail:
    json_decref(o);
    return NULL;
}

const char *ward_problem_type_uri(enum ward_problem_type type)
{
    return info(type)->uri;
}

const char *ward_problem_type_title(enum ward_problem_type type)
{
    return info(type)->title;
}

int ward_problem_type_status(enum ward_problem_type type)
{
    return info(type)->status;
}
