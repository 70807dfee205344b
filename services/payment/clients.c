/* clients.c — the two dependencies, called by name through a ward_registry: invoice-service
 * behind a circuit breaker, accounting-service behind a rate limiter (wait mode); both
 * with retries and a per-call deadline of --step-timeout. And the give-up rule. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pay.h"

static enum ward_err client(struct pay_ctx *ctx, const char *name, bool limiter,
                            struct ward_rclient **out)
{
    struct ward_rclient_settings s;
    ward_rclient_settings_default(&s);
    s.name = name;
    s.call_timeout_ns = ctx->step_timeout;
    s.discovery.registry = ctx->registry;
    s.breaker.enable = !limiter;
    s.breaker.settings.timeout_ns = ctx->breaker_timeout;
    if (limiter) {
        s.limiter.enable = true;
        s.limiter.wait = true;
        s.limiter.settings.limit = (double)ctx->ledger_rate;
        s.limiter.settings.burst = ctx->ledger_burst;
    }
    enum ward_err err = ward_rclient_new(&s, out);
    if (err == WARD_ERR_OK)
        err = ward_rclient_export(*out, ward_service_metrics(ctx->svc));
    return err;
}

enum ward_err pay_clients_new(struct pay_ctx *ctx)
{
    struct ward_registry_settings rs;
    char *fallback = NULL;
    ward_registry_settings_default(&rs);
    rs.url = ward_service_registry_url(ctx->svc);
    if (rs.url == NULL) {
        size_t n = strlen(ctx->invoice_addr) + strlen(ctx->accounting_addr) + 64;
        fallback = malloc(n);
        if (fallback == NULL)
            return WARD_ERR_NOMEM;
        snprintf(fallback, n, "static:invoice-service=%s,accounting-service=%s",
                 ctx->invoice_addr, ctx->accounting_addr);
        rs.url = fallback;
    }
    rs.log = ctx->log;
    enum ward_err err = ward_registry_new(&rs, &ctx->registry);
    free(fallback);
    if (err == WARD_ERR_OK)
        err = client(ctx, "invoice-service", false, &ctx->invoices);
    if (err == WARD_ERR_OK)
        err = client(ctx, "accounting-service", true, &ctx->ledger);
    return err;
}

void pay_clients_free(struct pay_ctx *ctx)
{
    ward_rclient_free(ctx->invoices);
    ward_rclient_free(ctx->ledger);
    ward_registry_free(ctx->registry);
    ctx->invoices = ctx->ledger = NULL;
    ctx->registry = NULL;
}

/* "409 conflict: the invoice is void" from a problem body, else the bare status. */
static void describe_status(const struct ward_http_result *res, json_t *doc, char *buf,
                            size_t size)
{
    const char *type = json_string_value(json_object_get(doc, "type"));
    const char *detail = json_string_value(json_object_get(doc, "detail"));
    const char *slug = type != NULL && strrchr(type, '/') != NULL ? strrchr(type, '/') + 1 : type;
    snprintf(buf, size, "%d%s%s%s%s", res->status, slug != NULL ? " " : "",
             slug != NULL ? slug : "", detail != NULL ? ": " : "", detail != NULL ? detail : "");
}

void pay_call(struct pay_ctx *ctx, struct ward_rclient *rc, const char *path, json_t *body,
              const char *key, const char *request_id, struct pay_outcome *out, json_t **answer)
{
    struct ward_http_result res = {0};
    json_t *doc = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    const char *const headers[] = {"Accept: application/json", NULL};
    *out = (struct pay_outcome){.verdict = PAY_AGAIN};
    if (answer != NULL)
        *answer = NULL;
    if (text == NULL) {
        snprintf(out->detail, sizeof out->detail, "out of memory");
        return;
    }
    const struct ward_http_call call = {
        .method = "POST", .url = path, .headers = headers, .body = text,
        .body_len = strlen(text), .content_type = "application/json",
        .deadline = ward_clock_now(NULL) + ctx->step_timeout, .request_id = request_id,
        .idempotency_key = key,
    };
    enum ward_err err = ward_rclient_call(rc, &call, &res);
    free(text);
    out->sent = res.sent;
    if (res.body != NULL && res.body_len > 0)
        doc = json_loadb(res.body, res.body_len, 0, NULL);
    const char *name = ward_rclient_name(rc);
    switch (err) {
    case WARD_ERR_OK: {
        const char *id = json_string_value(json_object_get(doc, "id"));
        if (res.status < 200 || res.status > 299 || id == NULL) {
            snprintf(out->detail, sizeof out->detail, "%s answered %d without an id", name,
                     res.status);
            break; /* not what we asked for: ambiguous, ask again */
        }
        out->verdict = PAY_DONE;
        snprintf(out->result_id, sizeof out->result_id, "%s", id);
        snprintf(out->detail, sizeof out->detail, "%s", id);
        if (answer != NULL) {
            *answer = doc;
            doc = NULL;
        }
        break;
    }
    case WARD_ERR_HTTP_STATUS: {
        char what[300];
        describe_status(&res, doc, what, sizeof what);
        snprintf(out->detail, sizeof out->detail, "%s answered %s", name, what);
        const char *type = json_string_value(json_object_get(doc, "type"));
        bool in_flight = res.status == 409 && type != NULL && strstr(type, "idempotency-in-flight") != NULL;
        /* a 4xx is definite, except "the first request with the key still runs" and 429 */
        if (res.status >= 400 && res.status < 500 && !in_flight && res.status != 429)
            out->verdict = PAY_GIVE_UP;
        break;
    }
    case WARD_ERR_CONNECT:
    case WARD_ERR_OPEN:
    case WARD_ERR_TOO_MANY_REQUESTS:
    case WARD_ERR_RATE_LIMITED:
    case WARD_ERR_BULKHEAD_FULL:
    case WARD_ERR_UNAVAILABLE:
        /* never reached the service, unless an earlier attempt of the call may have */
        snprintf(out->detail, sizeof out->detail, "%s not reached: %s", name, ward_strerror(err));
        if (!res.sent) {
            out->verdict = PAY_GIVE_UP;
            out->unreached = true;
        }
        break;
    default: /* timeout, transport error after sending, deadline, budget...: ambiguous */
        snprintf(out->detail, sizeof out->detail, "%s: %s", name, ward_strerror(err));
        break;
    }
    json_decref(doc);
    ward_http_result_fini(&res);
}
