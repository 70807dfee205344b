/* status.c — `ward status`: the stack as the running `ward up` sees it (every process,
 * its address, state and restarts), each instance as the registry sees it (passing its
 * health check or not: asked of the registry itself, Consul's API or etcd) and as the
 * gateway sees it (ejected or not), and the gateway's routes with their breakers and
 * limiters, from its admin API. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <ward/config.h>
#include <ward/httpc.h>
#include <ward/registry.h>

#include "cli.h"

/* The gateway's /admin/status, or NULL. */
static json_t *gateway_status(unsigned admin_port)
{
    struct ward_httpc *http = NULL;
    if (admin_port == 0 || ward_httpc_new(NULL, &http) != WARD_ERR_OK)
        return NULL;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/admin/status", admin_port);
    struct ward_http_result res;
    enum ward_err err = ward_httpc_do(
        http, &(struct ward_http_call){.url = url, .deadline = cli_now() + 2 * WARD_NS_PER_S},
        &res);
    json_t *doc = err == WARD_ERR_OK && res.status == 200 ? json_loads(res.body, 0, NULL) : NULL;
    ward_http_result_fini(&res);
    ward_httpc_free(http);
    return doc;
}

/* Whether the registry lists the instance at port of service as passing: "passing",
 * "not listed", or "?" when the registry does not answer. */
static const char *registry_view(struct ward_registry *reg, const char *service, int port)
{
    struct ward_instances list = {0};
    if (reg == NULL || ward_registry_discover(reg, service, &list) != WARD_ERR_OK)
        return "?";
    const char *view = "not listed";
    for (size_t i = 0; i < list.len; i++)
        if (list.items[i].port == port && (strcmp(list.items[i].address, "127.0.0.1") == 0 ||
                                           strcmp(list.items[i].address, "localhost") == 0))
            view = "passing";
    ward_instances_fini(&list);
    return view;
}

/* Whether the gateway's balancer ejected the instance at address of service ("-" when no
 * route leads to service or the gateway does not know the instance). */
static const char *ejected_view(json_t *gw, const char *service, const char *address)
{
    size_t i, j;
    json_t *route, *in;
    json_array_foreach(json_object_get(gw, "routes"), i, route)
    {
        if (strcmp(json_string_value(json_object_get(route, "service")), service) != 0)
            continue;
        json_array_foreach(json_object_get(route, "instances"), j, in)
            if (strcmp(json_string_value(json_object_get(in, "address")), address) == 0)
                return json_is_true(json_object_get(in, "ejected")) ? "yes" : "no";
        return "-";
    }
    return "-";
}

static void print_children(json_t *st, json_t *gw, struct ward_registry *reg)
{
    printf("%-22s %-21s %-11s %8s %8s  %-10s %s\n", "PROCESS", "ADDRESS", "STATE", "PID",
           "RESTARTS", "REGISTRY", "EJECTED");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "children"), i, c)
    {
        char addr[32];
        int port = (int)json_integer_value(json_object_get(c, "port"));
        snprintf(addr, sizeof addr, port > 0 ? "127.0.0.1:%d" : "-", port);
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *registry = "-", *ejected = "-";
        if (strstr(name, "-service") != NULL && port > 0) {
            registry = registry_view(reg, name, port);
            ejected = ejected_view(gw, name, addr);
        }
        const char *state = json_string_value(json_object_get(c, "state"));
        printf("%-22s %-21s %-11s %8d %8d  %-10s %s%s\n",
               json_string_value(json_object_get(c, "label")), addr, state,
               (int)json_integer_value(json_object_get(c, "pid")),
               (int)json_integer_value(json_object_get(c, "restarts")), registry, ejected,
               json_is_true(json_object_get(c, "held")) ? "   (held by ward stop)" : "");
    }
}

static void print_routes(json_t *gw)
{
    printf("\n%-20s %-20s %-10s %8s %9s %10s  %s\n", "ROUTE", "SERVICE", "BREAKER", "TRIPS",
           "REQUESTS", "INSTANCES", "LIMITER");
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(gw, "routes"), i, r)
    {
        json_t *b = json_object_get(r, "breaker"), *l = json_object_get(r, "limiter");
        char limiter[96] = "-";
        if (json_is_object(l))
            snprintf(limiter, sizeof limiter, "%g/s burst %lld: %lld limited of %lld",
                     json_number_value(json_object_get(l, "rate")),
                     (long long)json_integer_value(json_object_get(l, "burst")),
                     (long long)json_integer_value(json_object_get(l, "limited")),
                     (long long)(json_integer_value(json_object_get(l, "limited")) +
                                 json_integer_value(json_object_get(l, "admitted"))));
        printf("%-20s %-20s %-10s %8lld %9lld %10zu  %s\n",
               json_string_value(json_object_get(r, "prefix")),
               json_string_value(json_object_get(r, "service")),
               json_string_value(json_object_get(b, "state")),
               (long long)json_integer_value(json_object_get(b, "trips")),
               (long long)json_integer_value(json_object_get(r, "requests")),
               json_array_size(json_object_get(r, "instances")), limiter);
    }
}

int cli_status(int argc, char **argv)
{
    const char *data_dir = "./data";
    bool as_json = false;
    const struct ward_opt opts[] = {
        {"data-dir", "WARD_DATA", WARD_OPT_STRING, &data_dir, "the data directory of the running ward up", 0, 0},
        {"json", NULL, WARD_OPT_BOOL, &as_json, "print the stack and the gateway's status as one JSON document", 0, 0},
    };
    int parsed = cli_parse_flags(opts, 2, argc, argv, "ward status");
    if (parsed >= 0)
        return parsed;
    char path[PATH_MAX + 16];
    cli_control_path(data_dir, path, sizeof path);
    char *text = NULL;
    if (!cli_control_ask(path, "status", &text)) {
        fprintf(stderr, "ward status: no ward up answers on %s\n", path);
        return 1;
    }
    json_t *st = json_loads(text, 0, NULL);
    free(text);
    if (st == NULL) {
        fprintf(stderr, "ward status: the answer of %s is not JSON\n", path);
        return 1;
    }
    unsigned admin = 0;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(st, "children"), i, c)
        if (strcmp(json_string_value(json_object_get(c, "name")), "ward-gateway") == 0)
            admin = (unsigned)json_integer_value(json_object_get(c, "admin_port"));
    json_t *gw = gateway_status(admin);
    if (as_json) {
        json_object_set(st, "gateway", gw != NULL ? gw : json_null());
        char *out = json_dumps(st, JSON_INDENT(2));
        if (out != NULL)
            puts(out);
        free(out);
    } else {
        printf("registry: %s   data: %s\n\n", json_string_value(json_object_get(st, "registry")),
               json_string_value(json_object_get(st, "data_dir")));
        struct ward_registry_settings rs;
        ward_registry_settings_default(&rs);
        rs.url = json_string_value(json_object_get(st, "registry"));
        struct ward_registry *reg = NULL;
        if (rs.url == NULL || ward_registry_new(&rs, &reg) != WARD_ERR_OK)
            reg = NULL;
        print_children(st, gw, reg);
        ward_registry_free(reg);
        if (gw != NULL)
            print_routes(gw);
        else
            printf("\n(the gateway's admin API does not answer)\n");
    }
    json_decref(gw);
    json_decref(st);
    return 0;
}
