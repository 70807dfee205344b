/* test_selfreg.c — a daemon in the registry: zakat-service started with --registry
 * registers itself (passing, with its version) once it serves, and deregisters first
 * thing on SIGTERM, while it still serves for its shutdown delay. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

TestSuite(selfreg, .timeout = 60);

/* The instances of zakat-service the registry lists as passing. */
static size_t passing(uint16_t registry_port, json_t **first)
{
    struct h_resp r;
    cr_assert(h_http(registry_port, "GET", "/v1/health/service/zakat-service?passing", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(json_is_array(r.json), "%s", r.body);
    size_t n = json_array_size(r.json);
    if (first != NULL)
        *first = n > 0 ? json_incref(json_array_get(r.json, 0)) : NULL;
    h_resp_free(&r);
    return n;
}

Test(selfreg, registers_once_serving_and_deregisters_first_on_sigterm)
{
    struct h_proc *reg = h_start("ward-registry", NULL);
    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", reg->port);
    const char *args[] = {"--registry", url, "--shutdown-delay", "1s", NULL};
    struct h_proc *zk = h_start("zakat-service", args);

    json_t *line = h_log_wait(zk, "\"msg\":\"registered\"", 5000);
    cr_assert_not_null(line, "zakat-service did not register");
    json_decref(line);
    json_t *entry = NULL;
    cr_assert_eq(passing(reg->port, &entry), 1);
    json_t *svc = json_object_get(entry, "Service");
    cr_assert_eq(json_integer_value(json_object_get(svc, "Port")), zk->port);
    cr_assert_str_eq(json_string_value(json_object_get(svc, "Address")), "127.0.0.1");
    cr_assert_not_null(json_object_get(json_object_get(svc, "Meta"), "version"));
    json_t *checks = json_object_get(entry, "Checks");
    size_t i;
    json_t *c;
    bool http = false;
    json_array_foreach(checks, i, c) {
        const char *type = json_string_value(json_object_get(c, "Type"));
        http = http || (type != NULL && strcmp(type, "http") == 0);
    }
    cr_assert(http, "no HTTP check on /ready");
    json_decref(entry);

    h_signal(zk, SIGTERM);
    line = h_log_wait(zk, "\"msg\":\"deregistered\"", 3000);
    cr_assert_not_null(line, "zakat-service did not deregister");
    json_decref(line);
    cr_assert_eq(passing(reg->port, NULL), 0, "still listed after deregistration");
    /* still serving during the shutdown delay, so callers that have not seen the change
     * succeed */
    struct h_resp r;
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"wealth\":10000,\"nisab\":5000}";
    cr_assert(h_http(zk->port, "POST", "/calculate", ct, body, strlen(body), &r));
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
    cr_assert_eq(h_wait(zk, 10000), 0);
    h_free(zk);
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
}

Test(selfreg, serves_unregistered_when_the_registry_is_down)
{
    /* a port nothing listens on */
    struct h_proc *probe = h_start("ward-registry", NULL);
    uint16_t port = probe->port;
    cr_assert_eq(h_stop(probe, 10000), 0);
    h_free(probe);

    char url[64];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", port);
    const char *args[] = {"--registry", url, "--shutdown-delay", "0", NULL};
    struct h_proc *zk = h_start("zakat-service", args); /* ready although the registry is down */
    json_t *line = h_log_wait(zk, "\"msg\":\"registration failed", 5000);
    cr_assert_not_null(line);
    json_decref(line);
    cr_assert_eq(h_stop(zk, 10000), 0);
    h_free(zk);
}

Test(selfreg, a_wildcard_listen_address_needs_advertise)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"--listen", "0.0.0.0:0", "--registry", "consul://127.0.0.1:1", NULL};
    cr_assert_eq(h_run("zakat-service", args, &out, &err), 2);
    cr_assert_not_null(strstr(err, "--advertise"), "%s", err);
    free(out);
    free(err);
}
