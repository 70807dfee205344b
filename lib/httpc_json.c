/* httpc_json.c — the reading side of the blocking HTTP client: response headers, releasing
 * results, and JSON calls (a serialised body out, the answer parsed when it is JSON). */
#include <ward/httpc.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ACCEPT_JSON "Accept: application/json"

const char *ward_http_result_header(const struct ward_http_result *res, const char *name)
{
    const char *p, *end, *value = NULL;

    if (res == NULL || name == NULL || res->headers_ == NULL)
        return NULL;
    p = res->headers_;
    end = p + res->headers_len_;
    while (p < end && value == NULL) {
        const char *v = p + strlen(p) + 1;
        if (strcasecmp(p, name) == 0)
            value = v;
        p = v + strlen(v) + 1;
    }
    return value;
}

void ward_http_result_headers(const struct ward_http_result *res, ward_http_header_fn fn,
                              void *arg)
{
    if (res == NULL || fn == NULL || res->headers_ == NULL)
        return;
    const char *p = res->headers_, *end = p + res->headers_len_;
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        if (!fn(p, v, arg))
            return;
        p = v + strlen(v) + 1;
    }
}

void ward_http_result_fini(struct ward_http_result *res)
{
    if (res == NULL)
        return;
    free(res->body);
    free(res->headers_);
    *res = (struct ward_http_result){0};
}

/* True when content_type names a JSON media type: application/json or any "+json"
 * suffix (application/problem+json, application/health+json), parameters ignored. */
static bool is_json_type(const char *content_type)
{
    size_t n;

    if (content_type == NULL)
        return false;
    n = strcspn(content_type, "; \t");
    if (n == 16 && strncasecmp(content_type, "application/json", 16) == 0)
        return true;
    return n > 5 && memchr(content_type, '/', n) != NULL &&
           strncasecmp(content_type + n - 5, "+json", 5) == 0;
}

static bool has_accept(const char *const *headers)
{
    for (const char *const *x = headers; x != NULL && *x != NULL; x++)
        if (strncasecmp(*x, "Accept:", 7) == 0)
            return true;
    return false;
}

/* The caller's headers plus Accept, in a new NULL-terminated array (the strings are
 * borrowed); NULL when out of memory. */
static const char **with_accept(const char *const *headers)
{
    size_t n = 0;
    const char **all;

    while (headers != NULL && headers[n] != NULL)
        n++;
    all = calloc(n + 2, sizeof *all);
    if (all == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        all[i] = headers[i];
    all[n] = ACCEPT_JSON;
    return all;
}

enum ward_err ward_httpc_json(struct ward_httpc *c, const struct ward_http_call *call,
                              json_t *body, struct ward_http_result *res, json_t **out)
{
    struct ward_http_call jc;
    const char **headers = NULL;
    char *text = NULL;
    enum ward_err rc = WARD_ERR_INVAL;

    if (out != NULL)
        *out = NULL;
    if (res != NULL)
        *res = (struct ward_http_result){0};
    if (call == NULL || res == NULL || out == NULL)
        goto out;
    jc = *call;
    jc.body = NULL;
    jc.body_len = 0;
    jc.content_type = NULL;
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL)
            goto out; /* NaN, or invalid UTF-8 in a string, or no memory */
        jc.body = text;
        jc.body_len = strlen(text);
        jc.content_type = "application/json";
    }
    if (!has_accept(call->headers)) {
        rc = WARD_ERR_NOMEM;
        headers = with_accept(call->headers);
        if (headers == NULL)
            goto out;
        jc.headers = headers;
    }
    rc = ward_httpc_do(c, &jc, res);
    if (rc == WARD_ERR_OK && res->body_len > 0 &&
        is_json_type(ward_http_result_header(res, "Content-Type")))
        *out = json_loadb(res->body, res->body_len, JSON_DECODE_ANY, NULL);
out:
    free(headers);
    free(text);
    return rc;
}
