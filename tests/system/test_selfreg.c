/* test_selfreg.c — a daemon in the registry: zakat-service started with --registry
 * registers itself (passing, with its version) once it serves, and deregisters first
 * thing on SIGTERM, while it still serves for its shutdown delay; after a registry
 * restart, anti-entropy registers it again (no --data-dir) or the registry still has it
 * (--data-dir, after SIGTERM and after SIGKILL). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

Test(selfreg, registry_refresh_below_a_millisecond_is_a_usage_error)
{
    char *out = NULL, *err = NULL;
    const char *args[] = {"--registry-refresh", "500us", NULL};
    cr_assert_eq(h_run("zakat-service", args, &out, &err), 2);
    cr_assert_not_null(strstr(err, "--registry-refresh: \"500us\" is out of range"), "%s", err);
    free(out);
    free(err);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ward-registry on listen (NULL: a free port), keeping its state in data_dir when set. */
static struct h_proc *start_registry(const char *listen, const char *data_dir)
{
    const char *args[8] = {"--shutdown-delay", "0", "--no-access-log"};
    size_t n = 3;
    if (listen != NULL) {
        args[n++] = "--listen";
        args[n++] = listen;
    }
    if (data_dir != NULL) {
        args[n++] = "--data-dir";
        args[n++] = data_dir;
    }
    return h_start("ward-registry", args);
}

/* Polls until the registry lists want passing instances (a result, not a time, is awaited). */
static bool wait_passing(uint16_t registry_port, size_t want, int ms)
{
    for (int64_t limit = mono_ms() + ms; mono_ms() < limit; h_sleep_ms(20))
        if (passing(registry_port, NULL) == want)
            return true;
    return false;
}

/* Whether the agent answers 200 for GET /v1/agent/service/id, as anti-entropy asks. */
static bool agent_knows(uint16_t registry_port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/agent/service/%s", id);
    struct h_resp r;
    cr_assert(h_http(registry_port, "GET", path, NULL, NULL, 0, &r));
    long st = r.status;
    h_resp_free(&r);
    return st == 200;
}

/* The id zakat-service registered as, from its "registered" line (caller frees). */
static char *registered_id(struct h_proc *zk)
{
    json_t *line = h_log_wait(zk, "\"msg\":\"registered\"", 5000);
    cr_assert_not_null(line, "zakat-service did not register");
    char *id = strdup(json_string_value(json_object_get(line, "id")));
    cr_assert_not_null(id);
    json_decref(line);
    return id;
}

Test(selfreg, restart_without_data_dir_reregisters_by_anti_entropy)
{
    struct h_proc *reg = start_registry(NULL, NULL);
    uint16_t port = reg->port;
    char url[64], listen[32];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)port);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    const char *args[] = {"--registry", url, "--registry-refresh", "200ms", "--shutdown-delay", "0", NULL};
    struct h_proc *zk = h_start("zakat-service", args);
    char *id = registered_id(zk);
    cr_assert(wait_passing(port, 1, 5000), "not listed as passing");

    h_signal(reg, SIGKILL); /* a crash: nothing saved, nothing deregistered */
    cr_assert_neq(h_wait(reg, 10000), -1);
    h_free(reg);
    /* several refresh periods against a registry that is down: the daemon keeps serving */
    for (int64_t limit = mono_ms() + 600; mono_ms() < limit; h_sleep_ms(20)) {
        struct h_resp r;
        cr_assert(h_http(zk->port, "GET", "/ready", NULL, NULL, 0, &r));
        cr_assert_eq(r.status, 200);
        h_resp_free(&r);
    }
    /* Frozen across the restart, so that anti-entropy cannot register it before we look:
     * with a 200 ms refresh it could win that race. */
    h_signal(zk, SIGSTOP);
    reg = start_registry(listen, NULL);
    cr_assert_eq(reg->port, port);
    cr_assert_eq(passing(port, NULL), 0, "a registry without --data-dir remembered us");
    cr_assert(!agent_knows(port, id));
    cr_assert_null(h_log_wait(zk, "\"msg\":\"re-registered\"", 0));
    h_signal(zk, SIGCONT);

    int64_t t0 = mono_ms();
    cr_assert(wait_passing(port, 1, 5000), "anti-entropy did not register it again");
    cr_log_info("listed again %lld ms after SIGCONT", (long long)(mono_ms() - t0));
    json_t *entry = NULL;
    cr_assert_eq(passing(port, &entry), 1);
    json_t *svc = json_object_get(entry, "Service");
    cr_assert_str_eq(json_string_value(json_object_get(svc, "ID")), id);
    cr_assert_eq(json_integer_value(json_object_get(svc, "Port")), zk->port);
    json_decref(entry);
    json_t *line = h_log_wait(zk, "\"msg\":\"re-registered\"", 1000);
    cr_assert_not_null(line, "no re-registered line");
    cr_assert_str_eq(json_string_value(json_object_get(line, "id")), id);
    json_decref(line);

    cr_assert_eq(h_stop(zk, 10000), 0);
    h_free(zk);
    cr_assert_eq(passing(port, NULL), 0, "still listed after deregistration");
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
    free(id);
}

static char data_dir[64];

/* The fini of the --data-dir test: removes the directory, also after a failed assertion. */
static void remove_data_dir(void)
{
    if (data_dir[0] == '\0')
        return;
    char path[128];
    snprintf(path, sizeof path, "%s/registry.json", data_dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/registry.json.tmp", data_dir);
    unlink(path);
    rmdir(data_dir);
    data_dir[0] = '\0';
}

/* Polls until the registry's data file holds needle. */
static bool wait_saved(const char *needle, int ms)
{
    char path[128];
    snprintf(path, sizeof path, "%s/registry.json", data_dir);
    for (int64_t limit = mono_ms() + ms; mono_ms() < limit; h_sleep_ms(20)) {
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strstr(buf, needle) != NULL)
            return true;
    }
    return false;
}

/* The registry's count of passing HTTP probes since it started. */
static double http_probes_passed(uint16_t registry_port)
{
    static const char key[] = "registry_check_runs_total{type=\"http\",status=\"passing\"} ";
    struct h_resp r;
    cr_assert(h_http(registry_port, "GET", "/metrics", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 200);
    const char *at = strstr(r.body, key);
    cr_assert_not_null(at, "%s", r.body);
    double v = strtod(at + sizeof key - 1, NULL);
    h_resp_free(&r);
    return v;
}

Test(selfreg, restart_with_data_dir_keeps_registration, .fini = remove_data_dir)
{
    snprintf(data_dir, sizeof data_dir, "/tmp/ward-selfreg-XXXXXX");
    cr_assert_not_null(mkdtemp(data_dir));
    struct h_proc *reg = start_registry(NULL, data_dir);
    uint16_t port = reg->port;
    char url[64], listen[32];
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)port);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", (unsigned)port);
    /* a refresh far beyond the test: anti-entropy cannot be what brings it back */
    const char *args[] = {"--registry", url, "--registry-refresh", "60s", "--shutdown-delay", "0", NULL};
    struct h_proc *zk = h_start("zakat-service", args);
    char *id = registered_id(zk);
    cr_assert(wait_passing(port, 1, 5000), "not listed as passing");

    /* A crash first, while only the writer, which saves on every change, can have put
     * us in the file; then a graceful stop, which saves a last snapshot. */
    static const int sigs[] = {SIGKILL, SIGTERM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        if (sigs[i] == SIGKILL)
            cr_assert(wait_saved(id, 5000), "the registration was never saved");
        h_signal(reg, sigs[i]);
        int st = h_wait(reg, 10000);
        cr_assert_eq(st, sigs[i] == SIGTERM ? 0 : 128 + SIGKILL);
        h_free(reg);
        reg = start_registry(listen, data_dir);
        cr_assert_eq(reg->port, port);
        json_t *entry = NULL;
        cr_assert_eq(passing(port, &entry), 1, "forgotten after %s", strsignal(sigs[i]));
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(entry, "Service"), "ID")), id);
        json_decref(entry);
        /* the persisted passing status is re-earned by a real probe of /ready */
        int64_t t0 = mono_ms();
        while (http_probes_passed(port) < 1 && mono_ms() - t0 < 5000)
            h_sleep_ms(20);
        cr_assert_geq(http_probes_passed(port), 1, "its check was not probed after restart");
        cr_log_info("after %s: listed at once, probed passing %lld ms after restart",
                    strsignal(sigs[i]), (long long)(mono_ms() - t0));
        cr_assert_eq(passing(port, NULL), 1);
    }
    cr_assert_null(h_log_wait(zk, "\"msg\":\"re-registered\"", 0), "anti-entropy ran");

    cr_assert_eq(h_stop(zk, 10000), 0);
    h_free(zk);
    cr_assert_eq(passing(port, NULL), 0, "still listed after deregistration");
    cr_assert_eq(h_stop(reg, 10000), 0);
    h_free(reg);
    free(id);
}
