/* main.c — ward-gateway: the single entry point (DESIGN.md §7). Routes from --config (or
 * the built-in ones), API keys from --api-keys, instances from the --registry watch
 * cache; an event loop carries every upstream call; the admin listener apart. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/config.h>
#include <ward/log.h>

#include "gateway.h"

static struct gw_ctx ctx = {
    .admin_listen = "127.0.0.1:9901",
    .state_lock = PTHREAD_MUTEX_INITIALIZER,
};

static const struct ward_opt opts[] = {
    {"config", "WARD_GATEWAY_CONFIG", WARD_OPT_STRING, &ctx.config_path, "routes file (YAML, docs/gateway.md); none: the built-in routes", 0, 0},
    {"api-keys", "WARD_API_KEYS", WARD_OPT_STRING, &ctx.keys_path, "API keys file: NAME KEY lines; none: routes with auth answer 401", 0, 0},
    {"admin-listen", "WARD_ADMIN_LISTEN", WARD_OPT_STRING, &ctx.admin_listen, "HOST:PORT of the admin listener (/admin/status, /metrics)", 0, 0},
};

/* Loaded before the server exists, so that its body limit can come from the file. */
static struct gw_config *loaded;
static struct gw_keys *loaded_keys;
static bool load_failed;

static void configure(struct ward_server_config *cfg, void *arg)
{
    (void)arg;
    char err[512] = "";
    enum ward_err e = ctx.config_path != NULL ? gw_config_load(ctx.config_path, &loaded, err, sizeof err)
                                              : gw_config_defaults(&loaded);
    if (e == WARD_ERR_OK && ctx.keys_path != NULL)
        e = gw_keys_load(ctx.keys_path, &loaded_keys, err, sizeof err);
    if (e != WARD_ERR_OK) {
        fprintf(stderr, "ward-gateway: %s\n", err[0] != '\0' ? err : ward_strerror(e));
        load_failed = true;
        return;
    }
    cfg->body_limit = (size_t)loaded->body_limit;
}

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    (void)arg;
    if (load_failed)
        return WARD_ERR_SYNTAX;
    ctx.svc = svc;
    ctx.log = ward_service_log(svc);
    ctx.metrics = ward_service_metrics(svc);
    enum ward_err err = WARD_ERR_OK;
    const char *url = ward_service_registry_url(svc);
    if (url != NULL) {
        struct ward_registry_settings rs;
        ward_registry_settings_default(&rs);
        rs.url = url;
        rs.log = ctx.log;
        err = ward_registry_new(&rs, &ctx.registry);
    } else {
        WARD_WARN(ctx.log, NULL, "no --registry: every route answers 503 (no instances)");
    }
    struct ward_httpc_settings hs;
    ward_httpc_settings_default(&hs);
    hs.max_body = (size_t)loaded->response_limit;
    struct ward_loop_settings ls;
    ward_loop_settings_default(&ls);
    ls.httpc = &hs;
    if (err == WARD_ERR_OK)
        err = ward_loop_new(&ls, &ctx.loop);
    if (err == WARD_ERR_OK) {
        err = gw_state_new(&ctx, loaded, loaded_keys, &ctx.state);
        loaded = NULL; /* taken, also on failure */
        loaded_keys = NULL;
    }
    if (err == WARD_ERR_OK)
        err = ward_server_fallback(ward_service_server(svc), gw_proxy, &ctx);
    if (err == WARD_ERR_OK)
        err = gw_admin_start(&ctx);
    if (err == WARD_ERR_OK)
        WARD_INFO(ctx.log, NULL, "routes", WARD_I("count", ctx.state->nroutes),
                  WARD_S("config", ctx.config_path != NULL ? ctx.config_path : "built-in"));
    return err;
}

static void teardown(struct ward_service *svc, void *arg)
{
    (void)svc;
    (void)arg;
    gw_admin_stop(&ctx);
    ward_loop_free(ctx.loop); /* answers what is still in flight (none after a drain) */
    gw_state_put(ctx.state);
    ward_registry_free(ctx.registry);
}

int main(int argc, char **argv)
{
    const struct ward_service_def def = {
        .name = "ward-gateway",
        .version = "0.1.0",
        .summary = "the single entry point: routes, discovery, breakers, keys and limits",
        .default_listen = "127.0.0.1:8080",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .setup = setup,
        .configure = configure,
        .teardown = teardown,
    };
    int rc = ward_service_main(&def, argc, argv);
    gw_config_free(loaded);
    gw_keys_free(loaded_keys);
    return rc;
}
