/* rclient.c — the resilient client's object (its layers, built from the settings), its
 * metrics, and the blocking call: a thin loop over the steps of rclient_policy.c. */
#include "rclient_int.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_NAME "default"
#define DEFAULT_BASE_URL "http://127.0.0.1:8082"
#define DEFAULT_CALL_TIMEOUT (10 * WARD_NS_PER_S)
#define DEFAULT_BULKHEAD 64

void ward_rclient_settings_default(struct ward_rclient_settings *s)
{
    memset(s, 0, sizeof *s);
    s->name = DEFAULT_NAME;
    s->base_url = DEFAULT_BASE_URL;
    s->call_timeout_ns = DEFAULT_CALL_TIMEOUT;
    s->bulkhead.enable = true;
    ward_bulkhead_settings_default(&s->bulkhead.settings);
    s->bulkhead.settings.name = NULL;
    s->bulkhead.settings.max_concurrent = DEFAULT_BULKHEAD;
    s->limiter.enable = false;
    ward_limiter_settings_default(&s->limiter.settings);
    s->limiter.settings.name = NULL;
    s->breaker.enable = true;
    ward_breaker_settings_default(&s->breaker.settings);
    s->retry.enable = true;
    ward_retry_policy_default(&s->retry.policy);
    s->budget.enable = true;
    ward_budget_settings_default(&s->budget.settings);
    s->budget.settings.name = NULL;
    ward_balancer_settings_default(&s->discovery.balancer);
}

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The checks of ward_rclient_new that no layer makes for us. */
static bool settings_valid(const struct ward_rclient_settings *s)
{
    size_t nlen;

    if (s->name == NULL || s->base_url == NULL)
        return false;
    nlen = strlen(s->name);
    if (nlen == 0 || nlen > WARD_RCLIENT_NAME_MAX)
        return false;
    if (!(has_prefix(s->base_url, "http://") && s->base_url[7] != '\0') &&
        !(has_prefix(s->base_url, "https://") && s->base_url[8] != '\0'))
        return false;
    if (s->call_timeout_ns < WARD_NS_PER_MS)
        return false;
    if (s->discovery.registry != NULL && s->discovery.service != NULL &&
        (s->discovery.service[0] == '\0' || strlen(s->discovery.service) > WARD_RCLIENT_NAME_MAX))
        return false;
    if (s->attempt_timeout_ns != 0 && s->attempt_timeout_ns < WARD_NS_PER_MS)
        return false;
    return !s->retry.enable || ward_retry_policy_check(&s->retry.policy) == WARD_ERR_OK;
}

/* The HTTP client rc owns: the defaults, on rc's clock, never cutting a call short. */
static enum ward_err own_httpc(struct ward_rclient *rc)
{
    struct ward_httpc_settings hs;

    ward_httpc_settings_default(&hs);
    hs.clock = rc->clock;
    hs.total_timeout = rc->call_timeout;
    rc->owns_httpc = true;
    return ward_httpc_new(&hs, &rc->httpc);
}

/* Creates each enabled layer with rc's name (unless it has its own) and rc's clock. */
static enum ward_err make_layers(struct ward_rclient *rc, const struct ward_rclient_settings *s)
{
    enum ward_err err = WARD_ERR_OK;

    if (s->bulkhead.enable) {
        struct ward_bulkhead_settings b = s->bulkhead.settings;
        b.name = b.name != NULL ? b.name : rc->name;
        err = ward_bulkhead_new(&b, &rc->bulkhead);
    }
    if (err == WARD_ERR_OK && s->limiter.enable) {
        struct ward_limiter_settings l = s->limiter.settings;
        l.name = l.name != NULL ? l.name : rc->name;
        l.clock = rc->clock;
        err = ward_limiter_new(&l, &rc->limiter);
    }
    if (err == WARD_ERR_OK && s->breaker.enable && s->breaker.shared != NULL) {
        rc->breaker = s->breaker.shared;
    } else if (err == WARD_ERR_OK && s->breaker.enable) {
        rc->owns_breaker = true;
        struct ward_breaker_settings br = s->breaker.settings;
        br.name = br.name != NULL ? br.name : rc->name;
        br.clock = rc->clock;
        err = ward_breaker_new(&br, &rc->breaker);
    }
    /* a budget only ever limits retries */
    if (err == WARD_ERR_OK && s->budget.enable && s->retry.enable) {
        struct ward_budget_settings bu = s->budget.settings;
        bu.name = bu.name != NULL ? bu.name : rc->name;
        bu.clock = rc->clock;
        err = ward_budget_new(&bu, &rc->budget);
    }
    return err;
}

enum ward_err ward_rclient_new(const struct ward_rclient_settings *s, struct ward_rclient **out)
{
    struct ward_rclient *rc = NULL;
    size_t len;
    enum ward_err err = WARD_ERR_INVAL;

    if (s == NULL || out == NULL || !settings_valid(s))
        goto fail;
    err = WARD_ERR_NOMEM;
    rc = calloc(1, sizeof *rc);
    if (rc == NULL)
        goto fail;
    rc->name = strdup(s->name);
    rc->base_url = strdup(s->base_url);
    if (rc->name == NULL || rc->base_url == NULL)
        goto fail;
    len = strlen(rc->base_url);
    while (len > 0 && rc->base_url[len - 1] == '/')
        rc->base_url[--len] = '\0';
    rc->base_len = len;
    rc->clock = s->clock != NULL ? s->clock : ward_clock_real();
    rc->call_timeout = s->call_timeout_ns;
    rc->attempt_timeout = s->attempt_timeout_ns;
    rc->limiter_wait = s->limiter.wait;
    if (s->retry.enable) {
        rc->retry = s->retry.policy;
    } else {
        ward_retry_policy_default(&rc->retry);
        rc->retry.max_attempts = 1;
    }
    rc->httpc = s->httpc;
    err = s->httpc != NULL ? WARD_ERR_OK : own_httpc(rc);
    if (err != WARD_ERR_OK)
        goto fail;
    err = make_layers(rc, s);
    if (err == WARD_ERR_OK && s->discovery.registry != NULL)
        err = ward__rdisc_new(rc, s);
    if (err != WARD_ERR_OK)
        goto fail;
    *out = rc;
    return WARD_ERR_OK;
fail:
    ward_rclient_free(rc);
    return err;
}

void ward_rclient_free(struct ward_rclient *rc)
{
    if (rc == NULL)
        return;
    ward__rdisc_free(rc->disc);
    ward_budget_free(rc->budget);
    if (rc->owns_breaker)
        ward_breaker_free(rc->breaker);
    ward_limiter_free(rc->limiter);
    ward_bulkhead_free(rc->bulkhead);
    if (rc->owns_httpc)
        ward_httpc_free(rc->httpc);
    free(rc->base_url);
    free(rc->name);
    free(rc);
}

enum ward_err ward_rclient_call(struct ward_rclient *rc, const struct ward_http_call *call,
                                struct ward_http_result *res)
{
    struct ward__rcall q;
    struct ward_http_call attempt;
    enum ward__rstep step;
    enum ward_err err;
    int64_t wait = 0;

    if (res == NULL)
        return WARD_ERR_INVAL;
    *res = (struct ward_http_result){0};
    step = ward__rcall_start(&q, rc, call, &wait);
    while (step != WARD__RSTEP_DONE) {
        ward_clock_sleep(rc->clock, wait);
        step = ward__rcall_attempt(&q, &attempt, &wait);
        if (step == WARD__RSTEP_SEND) {
            ward_http_result_fini(res);
            err = ward_httpc_do(rc->httpc, &attempt, res);
            step = ward__rcall_outcome(&q, err, res, &wait);
        }
    }
    res->sent = q.sent_any;
    return ward__rcall_finish(&q);
}

const char *ward_rclient_name(const struct ward_rclient *rc)
{
    return rc->name;
}

struct ward_breaker *ward_rclient_breaker(const struct ward_rclient *rc)
{
    return rc->breaker;
}

struct ward_bulkhead *ward_rclient_bulkhead(const struct ward_rclient *rc)
{
    return rc->bulkhead;
}

struct ward_limiter *ward_rclient_limiter(const struct ward_rclient *rc)
{
    return rc->limiter;
}

struct ward_budget *ward_rclient_budget(const struct ward_rclient *rc)
{
    return rc->budget;
}

struct ward_balancer *ward_rclient_balancer(const struct ward_rclient *rc)
{
    return rc->disc != NULL ? rc->disc->balancer : NULL;
}

/* Exports every layer rc has (and its HTTP client when it owns it). */
static enum ward_err export_layers(struct ward_rclient *rc, struct ward_metrics *reg)
{
    enum ward_err err = WARD_ERR_OK;

    if (rc->bulkhead != NULL)
        err = ward_bulkhead_export(rc->bulkhead, reg);
    if (err == WARD_ERR_OK && rc->limiter != NULL)
        err = ward_limiter_export(rc->limiter, reg);
    if (err == WARD_ERR_OK && rc->breaker != NULL && rc->owns_breaker)
        err = ward_breaker_export(rc->breaker, reg);
    if (err == WARD_ERR_OK && rc->budget != NULL)
        err = ward_budget_export(rc->budget, reg);
    if (err == WARD_ERR_OK && rc->disc != NULL && rc->disc->owns_balancer)
        err = ward_balancer_export(rc->disc->balancer, reg);
    if (err == WARD_ERR_OK && rc->owns_httpc)
        err = ward_httpc_export(rc->httpc, reg);
    return err;
}

enum ward_err ward_rclient_export(struct ward_rclient *rc, struct ward_metrics *reg)
{
    static const char *const labels[] = {"dependency", "result"};
    struct ward_metric_family *f_calls, *f_retries;
    struct ward_metric *calls[WARD__RRES_COUNT], *retries;
    enum ward_err err = WARD_ERR_INVAL;

    if (rc == NULL || reg == NULL)
        return WARD_ERR_INVAL;
    if (atomic_exchange(&rc->exported, true))
        return WARD_ERR_STATE;
    f_calls = ward_metrics_counter(reg, "ward_client_calls_total",
                                   "Resilient client calls by dependency and result.", 2, labels);
    f_retries = ward_metrics_counter(reg, "ward_client_retries_total",
                                     "Retries the resilient client made, by dependency.", 1,
                                     labels);
    if (f_calls == NULL || f_retries == NULL)
        goto fail;
    err = WARD_ERR_NOMEM;
    for (int i = 0; i < WARD__RRES_COUNT; i++) {
        calls[i] = ward_metric_get(
            f_calls, (const char *const[]){rc->name, ward__rclient_result_name(i)});
        if (calls[i] == NULL)
            goto fail;
    }
    retries = ward_metric_get(f_retries, (const char *const[]){rc->name});
    if (retries == NULL)
        goto fail;
    err = export_layers(rc, reg);
    if (err != WARD_ERR_OK)
        goto fail;
    for (int i = 0; i < WARD__RRES_COUNT; i++)
        atomic_store_explicit(&rc->m_calls[i], calls[i], memory_order_release);
    atomic_store_explicit(&rc->m_retries, retries, memory_order_release);
    return WARD_ERR_OK;
fail:
    atomic_store(&rc->exported, false);
    return err;
}
