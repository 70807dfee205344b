/* main.c — ward-gateway: the single entry point (DESIGN.md §7). Routes from --config (or
 * the built-in ones), API keys from --api-keys, instances from the --registry watch
 * cache; an event loop carries every upstream call; the admin listener apart; SIGHUP
 * reloads the files without touching a connection. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <ward/config.h>
#include <ward/log.h>
#include <ward/thread.h>

#include "gateway.h"

static struct gw_ctx ctx = {
    .admin_listen = "127.0.0.1:9901",
    .state_lock = PTHREAD_MUTEX_INITIALIZER,
    .loop_lock = PTHREAD_RWLOCK_INITIALIZER,
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

/* After the drain, before the server stops: what is still in flight is answered now
 * (503: the gateway is stopping), on a server that can still send it. */
static void stop_loop(void *arg)
{
    (void)arg;
    pthread_rwlock_wrlock(&ctx.loop_lock);
    ctx.stopping = true; /* no call starts any more: the loop can go */
    struct ward_loop *loop = ctx.loop;
    ctx.loop = NULL;
    pthread_rwlock_unlock(&ctx.loop_lock);
    ward_loop_free(loop);
}

/* ---- SIGHUP: reload ------------------------------------------------------------------ */

static pthread_t reloader;
static bool reloader_started;
static atomic_bool reloader_stop;

/* Loads the files again; a good pair replaces the state (requests in flight keep the one
 * they started with), a bad one is refused and logged with its FILE:LINE. */
static void reload(void)
{
    char err[512] = "";
    struct gw_config *cfg = NULL;
    struct gw_keys *keys = NULL;
    enum ward_err e = ctx.config_path != NULL ? gw_config_load(ctx.config_path, &cfg, err, sizeof err)
                                              : gw_config_defaults(&cfg);
    if (e == WARD_ERR_OK && ctx.keys_path != NULL)
        e = gw_keys_load(ctx.keys_path, &keys, err, sizeof err);
    if (e != WARD_ERR_OK) {
        WARD_ERROR(ctx.log, NULL, "reload refused: the configuration in use stays",
                   WARD_S("error", err[0] != '\0' ? err : ward_strerror(e)));
        gw_config_free(cfg);
        gw_keys_free(keys);
        return;
    }
    if (cfg->body_limit != ctx.state->cfg->body_limit ||
        cfg->response_limit != ctx.state->cfg->response_limit)
        WARD_WARN(ctx.log, NULL, "body_limit and response_limit take effect at the next start");
    size_t n = cfg->nroutes;
    struct gw_state *st = NULL;
    e = gw_state_new(&ctx, cfg, keys, &st);
    if (e != WARD_ERR_OK) {
        WARD_ERROR(ctx.log, NULL, "reload failed: the configuration in use stays",
                   WARD_S("error", ward_strerror(e)));
        return;
    }
    pthread_mutex_lock(&ctx.state_lock);
    struct gw_state *old = ctx.state;
    ctx.state = st;
    pthread_mutex_unlock(&ctx.state_lock);
    gw_state_put(old);
    WARD_INFO(ctx.log, NULL, "reloaded", WARD_I("routes", n),
              WARD_S("config", ctx.config_path != NULL ? ctx.config_path : "built-in"));
}

static void *reload_main(void *arg)
{
    (void)arg;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    int sig;
    while (sigwait(&set, &sig) == 0 && !atomic_load(&reloader_stop))
        reload();
    return NULL;
}

/* A proxy holds a connection per client: allow as many as the hard limit lets. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
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
        err = ward_server_on_drained(ward_service_server(svc), stop_loop, NULL);
    if (err == WARD_ERR_OK)
        err = gw_admin_start(&ctx);
    if (err == WARD_ERR_OK) {
        err = ward_thread_start(&reloader, reload_main, NULL);
        reloader_started = err == WARD_ERR_OK;
    }
    if (err == WARD_ERR_OK)
        WARD_INFO(ctx.log, NULL, "routes", WARD_I("count", ctx.state->nroutes),
                  WARD_S("config", ctx.config_path != NULL ? ctx.config_path : "built-in"));
    return err;
}

static void teardown(struct ward_service *svc, void *arg)
{
    (void)svc;
    (void)arg;
    if (reloader_started) {
        atomic_store(&reloader_stop, true);
        pthread_kill(reloader, SIGHUP); /* blocked there: sigwait takes it */
        pthread_join(reloader, NULL);
    }
    gw_admin_stop(&ctx);
    ward_loop_free(ctx.loop); /* when the server never ran: after a drain it is gone */
    gw_state_put(ctx.state);
    ward_registry_free(ctx.registry);
}

int main(int argc, char **argv)
{
    /* blocked before any thread starts, so that every thread inherits it and only the
     * reloader's sigwait takes it (its default action would end the process) */
    sigset_t hup;
    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &hup, NULL);
    raise_fd_limit();
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
