/* test_gw_config.c — unit tests of ward-gateway's configuration: the built-in routes, a
 * file with every key, each kind of error with its line, and the route match. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"

#define MS INT64_C(1000000)
#define SEC INT64_C(1000000000)

/* Writes text to a fresh temporary file; returns its path (the caller frees it and
 * unlinks the file). */
static char *write_file(const char *text)
{
    char *path = strdup("/tmp/test_gw_config_XXXXXX.yaml");
    int fd;
    FILE *f;

    cr_assert(path != NULL);
    fd = mkstemps(path, 5);
    cr_assert(fd >= 0);
    f = fdopen(fd, "w");
    cr_assert(f != NULL);
    cr_assert(fputs(text, f) >= 0);
    cr_assert(fclose(f) == 0);
    return path;
}

/* Loads text as a config file; the file is gone when this returns. */
static enum ward_err load(const char *text, struct gw_config **cfg, char *err, size_t errlen,
                          char **path_out)
{
    char *path = write_file(text);
    enum ward_err rc = gw_config_load(path, cfg, err, errlen);
    unlink(path);
    if (path_out != NULL)
        *path_out = path;
    else
        free(path);
    return rc;
}

static struct gw_config *load_ok(const char *text)
{
    struct gw_config *cfg = NULL;
    char err[512];
    enum ward_err rc = load(text, &cfg, err, sizeof err, NULL);
    cr_assert_eq(rc, WARD_ERR_OK, "load failed: %s", err);
    cr_assert_not_null(cfg);
    return cfg;
}

/* Expects text to be refused with "FILE:line: ..." containing want. */
static void expect_error(const char *text, int line, const char *want)
{
    static struct gw_config sentinel;
    struct gw_config *cfg = &sentinel;
    char err[512];
    char prefix[128];
    char *path = NULL;
    enum ward_err rc = load(text, &cfg, err, sizeof err, &path);

    cr_assert_eq(rc, WARD_ERR_SYNTAX, "rc %d for: %s", rc, text);
    cr_assert_null(cfg);
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "want line %d, got \"%s\"", line, err);
    cr_expect(strstr(err, want) != NULL, "want \"%s\" in \"%s\"", want, err);
    free(path);
}

/* Matches path in cfg: the route's prefix (or NULL) and the upstream path. */
static void expect_match(const struct gw_config *cfg, const char *path, const char *prefix,
                         const char *upstream)
{
    char out[256];
    const struct gw_route *r = gw_route_match(cfg, path, out, sizeof out);
    if (prefix == NULL) {
        cr_expect_null(r, "%s matched %s", path, r ? r->prefix : "");
        return;
    }
    cr_assert_not_null(r, "%s matched nothing", path);
    cr_expect_str_eq(r->prefix, prefix, "%s", path);
    cr_expect_str_eq(out, upstream, "%s", path);
}

static const struct gw_route *find(const struct gw_config *cfg, const char *prefix)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (strcmp(cfg->routes[i].prefix, prefix) == 0)
            return &cfg->routes[i];
    }
    cr_assert_fail("no route %s", prefix);
    return NULL;
}

Test(gw_config, builtin_routes_are_design_7)
{
    struct gw_config *cfg = NULL;
    const struct gw_route *z;

    cr_assert_eq(gw_config_defaults(&cfg), WARD_ERR_OK);
    cr_assert_eq(cfg->nroutes, 5);
    cr_expect_null(cfg->path);
    cr_expect_eq(cfg->body_limit, 1 << 20);
    cr_expect_eq(cfg->response_limit, 8 << 20);
    cr_expect_str_eq(find(cfg, "/api/zakat")->service, "zakat-service");
    cr_expect_str_eq(find(cfg, "/api/payments")->service, "payment-service");
    cr_expect_str_eq(find(cfg, "/api/invoices")->service, "invoice-service");
    cr_expect_str_eq(find(cfg, "/api/accounts")->service, "accounting-service");
    cr_expect_str_eq(find(cfg, "/api/transactions")->service, "accounting-service");

    z = find(cfg, "/api/zakat");
    cr_expect_str_eq(z->rewrite, "");
    cr_expect_eq(z->timeout_ns, 5 * SEC);
    cr_expect_eq(z->retry.max_attempts, 2);
    cr_expect_eq(z->retry.base_ns, 50 * MS);
    cr_expect_eq(ward_retry_policy_check(&z->retry), WARD_ERR_OK);
    cr_expect_eq(z->limit.rate, 0);
    cr_expect_eq(z->breaker.failures, 5);
    cr_expect_eq(z->breaker.open_timeout_ns, 30 * SEC);
    cr_expect_eq(z->breaker.half_open_requests, 1);
    cr_expect_eq(z->fallback.status, 503);
    cr_expect_null(z->fallback.body);
    cr_expect_not(z->auth);
    cr_expect_eq(z->fault.abort_percent, 0);
    cr_expect_eq(z->fault.delay_percent, 0);
    cr_expect_eq(z->line, 0);

    expect_match(cfg, "/api/zakat/v1/x", "/api/zakat", "/v1/x");
    expect_match(cfg, "/api/zakat/calculate", "/api/zakat", "/calculate");
    expect_match(cfg, "/api/payments", "/api/payments", "/payments");
    expect_match(cfg, "/api/payments/pay_1", "/api/payments", "/payments/pay_1");
    expect_match(cfg, "/api/invoices?customer_id=c1", "/api/invoices", "/invoices?customer_id=c1");
    expect_match(cfg, "/api/accounts/acct_1", "/api/accounts", "/accounts/acct_1");
    expect_match(cfg, "/api/transactions/txn_1/reverse", "/api/transactions",
                 "/transactions/txn_1/reverse");
    expect_match(cfg, "/health", NULL, NULL);
    gw_config_free(cfg);
}

Test(gw_config, breaker_settings_map_onto_libward)
{
    struct gw_config *cfg = load_ok("routes:\n"
                                    "  - prefix: /a\n"
                                    "    service: a\n"
                                    "    breaker: {failures: 3, open_timeout: 10s, "
                                    "half_open_requests: 4}\n");
    struct ward_breaker_settings s;

    gw_breaker_settings(&cfg->routes[0], &s);
    cr_expect_eq(s.timeout_ns, 10 * SEC);
    cr_expect_eq(s.max_requests, 4);
    cr_expect_null(s.ready_to_trip);
    cr_expect_eq(cfg->routes[0].breaker.failures, 3);
    gw_config_free(cfg);
}

static const char full_file[] =
    "# every key\n"                                       /* 1 */
    "body_limit: 64k\n"                                   /* 2 */
    "response_limit: 2m\n"                                /* 3 */
    "routes:\n"                                           /* 4 */
    "  - prefix: /api/zakat\n"                            /* 5 */
    "    service: zakat-service\n"                        /* 6 */
    "    rewrite: \"\"\n"                                 /* 7 */
    "    timeout: 1.5s\n"                                 /* 8 */
    "    retry:\n"                                        /* 9 */
    "      attempts: 4\n"                                 /* 10 */
    "      base: 20ms\n"                                  /* 11 */
    "      cap: 2s\n"                                     /* 12 */
    "      multiplier: 1.5\n"                             /* 13 */
    "      jitter: equal\n"                               /* 14 */
    "      max_retry_after: 3s\n"                         /* 15 */
    "    rate_limit:\n"                                   /* 16 */
    "      rate: 2.5\n"                                   /* 17 */
    "      burst: 7\n"                                    /* 18 */
    "    breaker:\n"                                      /* 19 */
    "      failures: 3\n"                                 /* 20 */
    "      open_timeout: 10s\n"                           /* 21 */
    "      half_open_requests: 2\n"                       /* 22 */
    "    fallback:\n"                                     /* 23 */
    "      status: 200\n"                                 /* 24 */
    "      body: '{\"zakat_due\": \"0.00\", \"cached\": true}'\n" /* 25 */
    "    auth: true\n"                                    /* 26 */
    "    fault:\n"                                        /* 27 */
    "      abort_percent: 12.5\n"                         /* 28 */
    "      abort_status: 502\n"                           /* 29 */
    "      delay_percent: 50\n"                           /* 30 */
    "      delay: 250ms\n"                                /* 31 */
    "  - prefix: /api/payments\n"                         /* 32 */
    "    service: payment-service\n"                      /* 33 */
    "    rewrite: /payments\n"                            /* 34 */
    "  - prefix: /static\n"                               /* 35 */
    "    service: files\n"                                /* 36 */
    "defaults:\n"                                         /* 37 */
    "  timeout: 2s\n"                                     /* 38 */
    "  auth: true\n"                                      /* 39 */
    "  retry: {attempts: 3}\n"                            /* 40 */
    "  rate_limit: {rate: 10}\n"                          /* 41 */
    "  breaker: {open_timeout: 5s}\n"                     /* 42 */
    "  fallback: {body: '[1, 2]'}\n"                      /* 43 */
    "  fault: {delay: 1s}\n";                             /* 44 */

Test(gw_config, every_key)
{
    struct gw_config *cfg = load_ok(full_file);
    const struct gw_route *z, *p, *s;

    cr_assert_eq(cfg->nroutes, 3);
    cr_expect_eq(cfg->body_limit, 64 << 10);
    cr_expect_eq(cfg->response_limit, 2 << 20);
    cr_expect_not_null(cfg->path);
    /* file order */
    z = &cfg->routes[0];
    p = &cfg->routes[1];
    s = &cfg->routes[2];
    cr_expect_str_eq(z->prefix, "/api/zakat");
    cr_expect_str_eq(p->prefix, "/api/payments");
    cr_expect_str_eq(s->prefix, "/static");
    cr_expect_eq(z->line, 5);
    cr_expect_eq(p->line, 32);
    cr_expect_eq(s->line, 35);

    cr_expect_str_eq(z->service, "zakat-service");
    cr_expect_str_eq(z->rewrite, "");
    cr_expect_eq(z->timeout_ns, 1500 * MS);
    cr_expect_eq(z->retry.max_attempts, 4);
    cr_expect_eq(z->retry.base_ns, 20 * MS);
    cr_expect_eq(z->retry.cap_ns, 2 * SEC);
    cr_expect_eq(z->retry.multiplier, 1.5);
    cr_expect_eq(z->retry.jitter, WARD_RETRY_JITTER_EQUAL);
    cr_expect_eq(z->retry.max_retry_after_ns, 3 * SEC);
    cr_expect_eq(z->limit.rate, 2.5);
    cr_expect_eq(z->limit.burst, 7);
    cr_expect_eq(z->breaker.failures, 3);
    cr_expect_eq(z->breaker.open_timeout_ns, 10 * SEC);
    cr_expect_eq(z->breaker.half_open_requests, 2);
    cr_expect_eq(z->fallback.status, 200);
    cr_expect_str_eq(z->fallback.body, "{\"zakat_due\": \"0.00\", \"cached\": true}");
    cr_expect(z->auth);
    cr_expect_eq(z->fault.abort_percent, 12.5);
    cr_expect_eq(z->fault.abort_status, 502);
    cr_expect_eq(z->fault.delay_percent, 50);
    cr_expect_eq(z->fault.delay_ns, 250 * MS);

    /* defaults{} (given after the routes) fill in what a route leaves out, key by key */
    cr_expect_str_eq(p->rewrite, "/payments");
    cr_expect_eq(p->timeout_ns, 2 * SEC);
    cr_expect(p->auth);
    cr_expect_eq(p->retry.max_attempts, 3);
    cr_expect_eq(p->retry.base_ns, 50 * MS); /* built in: defaults{} left it */
    cr_expect_eq(p->limit.rate, 10);
    cr_expect_eq(p->limit.burst, 10); /* ceil(rate) when not given */
    cr_expect_eq(p->breaker.open_timeout_ns, 5 * SEC);
    cr_expect_eq(p->breaker.failures, 5);
    cr_expect_eq(p->fallback.status, 503);
    cr_expect_str_eq(p->fallback.body, "[1, 2]");
    cr_expect_eq(p->fault.delay_ns, 1 * SEC);
    cr_expect_eq(p->fault.delay_percent, 0);
    cr_expect_null(s->rewrite); /* no rewrite: the path goes up unchanged */

    expect_match(cfg, "/api/zakat/calculate?x=1", "/api/zakat", "/calculate?x=1");
    expect_match(cfg, "/api/payments/p1", "/api/payments", "/payments/p1");
    expect_match(cfg, "/static/a.css", "/static", "/static/a.css");
    gw_config_free(cfg);
}

Test(gw_config, fallback_body_null_and_block_scalar)
{
    struct gw_config *cfg = load_ok("defaults:\n"
                                    "  fallback:\n"
                                    "    body: |\n"
                                    "      {\"a\": [1,\n"
                                    "             2]}\n"
                                    "routes:\n"
                                    "  - {prefix: /a, service: a}\n"
                                    "  - {prefix: /b, service: b, fallback: {body: null}}\n");
    cr_expect_str_eq(cfg->routes[0].fallback.body, "{\"a\": [1,\n       2]}\n");
    cr_expect_null(cfg->routes[1].fallback.body);
    gw_config_free(cfg);
}

Test(gw_config, rate_limit_burst_follows_rate)
{
    struct gw_config *cfg = load_ok("routes:\n"
                                    "  - {prefix: /a, service: a, rate_limit: {rate: 0.5}}\n"
                                    "  - {prefix: /b, service: b, rate_limit: {rate: 3.2}}\n"
                                    "  - {prefix: /c, service: c}\n");
    cr_expect_eq(cfg->routes[0].limit.burst, 1);
    cr_expect_eq(cfg->routes[1].limit.burst, 4);
    cr_expect_eq(cfg->routes[2].limit.rate, 0);
    cr_expect_eq(cfg->routes[2].limit.burst, 0);
    gw_config_free(cfg);
}

Test(gw_config, yaml_anchors_work)
{
    struct gw_config *cfg = load_ok("routes:\n"
                                    "  - prefix: /a\n"
                                    "    service: a\n"
                                    "    retry: &r {attempts: 5}\n"
                                    "  - prefix: /b\n"
                                    "    service: b\n"
                                    "    retry: *r\n");
    cr_expect_eq(cfg->routes[1].retry.max_attempts, 5);
    gw_config_free(cfg);
}

/* ---- errors, each with the line it names ---- */

Test(gw_config, error_unknown_keys_list_the_allowed)
{
    expect_error("routes:\n  - {prefix: /a, service: a}\nlisten: 1.2.3.4:80\n", 3,
                 "top level: unknown key \"listen\"; allowed: body_limit, response_limit, "
                 "defaults, routes");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    timeot: 5s\n",
                 4, "routes[0]: unknown key \"timeot\"; allowed: prefix, service, rewrite, "
                    "timeout, retry, rate_limit, breaker, fallback, auth, fault");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    retry:\n"
                 "      attempts: 3\n"
                 "      backoff: 1s\n",
                 6, "routes[0].retry: unknown key \"backoff\"; allowed: attempts, base, cap, "
                    "multiplier, jitter, max_retry_after");
    /* route-only keys are unknown in defaults{} */
    expect_error("defaults:\n  timeout: 1s\n  service: x\nroutes:\n  - {prefix: /a, service: a}\n",
                 3, "defaults: unknown key \"service\"; allowed: timeout, retry, rate_limit, "
                    "breaker, fallback, auth, fault");
}

Test(gw_config, error_duplicate_key)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    timeout: 1s\n"
                 "    timeout: 2s\n",
                 5, "routes[0]: duplicate key \"timeout\" (first on line 4)");
    expect_error("routes: []\nroutes: []\n", 2, "top level: duplicate key \"routes\"");
}

Test(gw_config, error_wrong_type)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    retry: 3\n",
                 4, "routes[0].retry: expected a mapping, got a scalar");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: [a, b]\n",
                 3, "routes[0].service: expected a string, got a sequence");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    auth: yes\n",
                 4, "routes[0].auth: expected true or false, got \"yes\"");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fallback: {status: \"503\"}\n",
                 4, "routes[0].fallback.status: expected a number, got the quoted string");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    retry: {attempts: 2.5}\n",
                 4, "routes[0].retry.attempts: \"2.5\" is not a whole number");
    expect_error("routes:\n  prefix: /a\n", 2, "routes: expected a sequence, got a mapping");
    expect_error("routes:\n  - /a\n", 2, "routes[0]: expected a mapping, got a scalar");
    expect_error("- a\n- b\n", 1, "the top level must be a mapping, not a sequence");
    expect_error("routes:\n  - {prefix: /a, service: a}\nbody_limit: lots\n", 3,
                 "body_limit: \"lots\" is not a size");
}

Test(gw_config, error_bad_duration)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    timeout: 5 s\n",
                 4, "routes[0].timeout: \"5 s\" is not a duration");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    timeout: 5\n",
                 4, "routes[0].timeout: \"5\" is not a duration");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    timeout: 0\n",
                 4, "routes[0].timeout: must be more than 0");
    expect_error("defaults:\n"
                 "  breaker:\n"
                 "    open_timeout: -1s\n"
                 "routes:\n  - {prefix: /a, service: a}\n",
                 3, "defaults.breaker.open_timeout: \"-1s\" is not a duration");
}

Test(gw_config, error_percent_and_status_out_of_range)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fault:\n"
                 "      abort_percent: 150\n",
                 5, "routes[0].fault.abort_percent: 150 is outside 0..100");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fault:\n"
                 "      delay_percent: -1\n",
                 5, "routes[0].fault.delay_percent: -1 is outside 0..100");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fault: {abort_percent: 5, abort_status: 700}\n",
                 4, "routes[0].fault.abort_status: 700 is not an HTTP status (100..599)");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fallback:\n"
                 "      status: 99\n",
                 5, "routes[0].fallback.status: 99 is not an HTTP status (100..599)");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    breaker: {failures: 0}\n",
                 4, "routes[0].breaker.failures: 0 is outside 1..1000000");
}

Test(gw_config, error_bad_prefix)
{
    expect_error("routes:\n"
                 "  - service: a\n"
                 "    prefix: api/a\n",
                 3, "routes[0].prefix: \"api/a\" must start with '/'");
    expect_error("routes:\n"
                 "  - prefix: /api/a/\n"
                 "    service: a\n",
                 2, "routes[0].prefix: \"/api/a/\" must not end with '/'");
    expect_error("routes:\n"
                 "  - prefix: /\n"
                 "    service: a\n",
                 2, "must not end with '/'");
    expect_error("routes:\n"
                 "  - prefix: /a//b\n"
                 "    service: a\n",
                 2, "has an empty segment");
    expect_error("routes:\n"
                 "  - prefix: /a?x\n"
                 "    service: a\n",
                 2, "may not contain '?'");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    rewrite: v1\n",
                 4, "routes[0].rewrite: \"v1\" must start with '/'");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a b\n",
                 3, "routes[0].service: \"a b\" is not a service name");
}

Test(gw_config, error_duplicate_prefix_names_both_lines)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "  - prefix: /b\n"
                 "    service: b\n"
                 "  - service: c\n"
                 "    prefix: /a\n",
                 7, "routes[2].prefix: \"/a\" is already the prefix of routes[0] (line 2)");
}

Test(gw_config, error_missing_service_or_prefix)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "  - prefix: /b\n"
                 "    timeout: 1s\n",
                 4, "routes[1]: missing service");
    expect_error("routes:\n"
                 "  - service: a\n",
                 2, "routes[0]: missing prefix");
}

Test(gw_config, error_fallback_body_not_json)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fallback:\n"
                 "      status: 200\n"
                 "      body: '{\"a\": }'\n",
                 6, "routes[0].fallback.body: not valid JSON");
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fallback:\n"
                 "      body: {a: 1}\n",
                 5, "routes[0].fallback.body: expected a string, got a mapping");
    /* in a literal block, the line of the body where JSON goes wrong */
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    fallback:\n"
                 "      body: |\n"
                 "        {\"a\": 1,\n"
                 "         \"b\": }\n",
                 7, "routes[0].fallback.body: not valid JSON");
}

Test(gw_config, error_yaml_syntax)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "   timeout: 1s\n",
                 4, "YAML syntax:");
    expect_error("routes: [\n", 2, "YAML syntax:");
    expect_error("routes:\n  - {prefix: /a, service: a}\n---\nroutes: []\n", 3,
                 "a second YAML document");
}

Test(gw_config, error_file_level)
{
    expect_error("", 1, "the file is empty");
    expect_error("# only a comment\n", 1, "the file is empty");
    expect_error("body_limit: 1m\n", 1, "routes: missing");
    expect_error("routes: []\n", 1, "routes: is empty");
}

Test(gw_config, error_retry_cap_below_base)
{
    expect_error("routes:\n"
                 "  - prefix: /a\n"
                 "    service: a\n"
                 "    retry:\n"
                 "      base: 2s\n"
                 "      cap: 1s\n",
                 5, "routes[0].retry: cap must not be shorter than base");
}

Test(gw_config, error_one_service_two_breakers)
{
    expect_error("routes:\n"
                 "  - prefix: /api/accounts\n"
                 "    service: accounting-service\n"
                 "  - prefix: /api/transactions\n"
                 "    service: accounting-service\n"
                 "    breaker: {failures: 9}\n",
                 4, "routes[1].breaker: differs from routes[0] (line 2)");
}

Test(gw_config, error_unreadable_file)
{
    static struct gw_config sentinel;
    struct gw_config *cfg = &sentinel;
    char err[256];

    cr_assert_eq(gw_config_load("/nonexistent/gw.yaml", &cfg, err, sizeof err),
                 WARD_ERR_SYSTEM);
    cr_expect_null(cfg);
    cr_expect_str_eq(err, "/nonexistent/gw.yaml: cannot read: No such file or directory");
    cr_expect_eq(gw_config_load(NULL, &cfg, err, sizeof err), WARD_ERR_INVAL);
    /* no error buffer at all is fine */
    cr_expect_eq(gw_config_load("/nonexistent/gw.yaml", &cfg, NULL, 0), WARD_ERR_SYSTEM);
}

/* ---- matching and rewriting ---- */

static const char match_file[] = "routes:\n"
                                 "  - {prefix: /api/zakat, service: z, rewrite: \"\"}\n"
                                 "  - {prefix: /api, service: api}\n"
                                 "  - {prefix: /api/zakat/v2, service: z2, rewrite: /v2}\n"
                                 "  - {prefix: /api/payments, service: p, rewrite: /payments}\n"
                                 "  - {prefix: /x, service: x, rewrite: /a/much/longer/prefix}\n";

Test(gw_config, match_on_segment_boundaries)
{
    struct gw_config *cfg = load_ok(match_file);

    expect_match(cfg, "/api/zakat", "/api/zakat", "/");
    expect_match(cfg, "/api/zakat/", "/api/zakat", "/");
    expect_match(cfg, "/api/zakat/x", "/api/zakat", "/x");
    expect_match(cfg, "/api/zakat?q=1", "/api/zakat", "/?q=1");
    expect_match(cfg, "/api/zakat/x?q=1&r=/y", "/api/zakat", "/x?q=1&r=/y");
    /* not a segment boundary: falls to the shorter /api */
    expect_match(cfg, "/api/zakatx", "/api", "/api/zakatx");
    expect_match(cfg, "/api/zakatx/y", "/api", "/api/zakatx/y");
    expect_match(cfg, "/apix", NULL, NULL);
    expect_match(cfg, "/ap", NULL, NULL);
    expect_match(cfg, "/", NULL, NULL);
    expect_match(cfg, "", NULL, NULL);
    expect_match(cfg, "api/zakat", NULL, NULL);
    gw_config_free(cfg);
}

Test(gw_config, match_longest_prefix_wins)
{
    struct gw_config *cfg = load_ok(match_file);

    /* /api/zakat/v2 is listed after /api/zakat and /api, and still wins */
    expect_match(cfg, "/api/zakat/v2", "/api/zakat/v2", "/v2");
    expect_match(cfg, "/api/zakat/v2/calculate?x", "/api/zakat/v2", "/v2/calculate?x");
    expect_match(cfg, "/api/zakat/v2x", "/api/zakat", "/v2x");
    expect_match(cfg, "/api/payments?limit=5", "/api/payments", "/payments?limit=5");
    expect_match(cfg, "/api/other", "/api", "/api/other");
    expect_match(cfg, "/api", "/api", "/api");
    expect_match(cfg, "/api?x", "/api", "/api?x");
    gw_config_free(cfg);
}

Test(gw_config, match_output_buffer)
{
    struct gw_config *cfg = load_ok(match_file);
    const char *path = "/x/y";
    size_t need = strlen(path) + cfg->rewrite_grow + 2;
    char *out = malloc(need);
    char tiny[8];
    const struct gw_route *r;

    cr_assert_not_null(out);
    cr_expect_eq(cfg->rewrite_grow, strlen("/a/much/longer/prefix") - 2);
    r = gw_route_match(cfg, path, out, need);
    cr_assert_not_null(r);
    cr_expect_str_eq(out, "/a/much/longer/prefix/y");
    /* too small: still the route, and "" for the path */
    r = gw_route_match(cfg, path, tiny, sizeof tiny);
    cr_assert_not_null(r);
    cr_expect_str_eq(r->service, "x");
    cr_expect_str_eq(tiny, "");
    /* no output wanted */
    cr_expect_not_null(gw_route_match(cfg, path, NULL, 0));
    cr_expect_null(gw_route_match(NULL, path, out, need));
    cr_expect_null(gw_route_match(cfg, NULL, out, need));
    free(out);
    gw_config_free(cfg);
}
