/* main.c — ward-gateway: the single entry point (DESIGN.md §7). Routes from --config (or
 * the built-in ones), API keys from --api-keys, instances from the --registry watch
 * cache; the engine's workers carry every request (engine.h); the admin listener apart.
 * The main thread waits for signals: SIGHUP reloads the files without touching a
 * connection, SIGTERM or SIGINT shut down gracefully (DESIGN.md §5), a second one at once. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/config.h>
#include <ward/log.h>

#include "engine.h"
#include "gateway.h"

#define VERSION "0.1.0"

static struct gw_ctx ctx = {
    .admin_listen = "127.0.0.1:9901",
    .state_lock = PTHREAD_MUTEX_INITIALIZER,
    .version = VERSION,
};

/* Loads --config (or the built-in routes) and --api-keys into *cfg and *keys; on failure
 * nothing is kept and err says why (FILE:LINE: reason, or the error's name). */
static enum ward_err load_files(struct gw_config **cfg, struct gw_keys **keys, char *err,
                                size_t size)
{
    *cfg = NULL;
    *keys = NULL;
    err[0] = '\0';
    enum ward_err e = ctx.config_path != NULL ? gw_config_load(ctx.config_path, cfg, err, size)
                                              : gw_config_defaults(cfg);
    if (e == WARD_ERR_OK && ctx.keys_path != NULL)
        e = gw_keys_load(ctx.keys_path, keys, err, size);
    if (e != WARD_ERR_OK) {
        if (err[0] == '\0')
            snprintf(err, size, "%s", ward_strerror(e));
        gw_config_free(*cfg);
        gw_keys_free(*keys);
        *cfg = NULL;
        *keys = NULL;
    }
    return e;
}

/* Loads the files; a good pair replaces the state (requests in flight keep the one they
 * started with), a bad one is refused and logged with its FILE:LINE. */
static void reload(void)
{
    char err[512];
    struct gw_config *cfg;
    struct gw_keys *keys;
    enum ward_err e = load_files(&cfg, &keys, err, sizeof err);
    if (e != WARD_ERR_OK) {
        WARD_ERROR(ctx.log, NULL, "reload refused: the configuration in use stays",
                   WARD_S("error", err));
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

/* A proxy holds a connection per client: allow as many as the hard limit lets. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Waits up to ns for a signal of set (0 when none came). */
static int wait_signal(const sigset_t *set, int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / WARD_NS_PER_S, .tv_nsec = ns % WARD_NS_PER_S};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* Serves until SIGTERM or SIGINT, then the graceful shutdown of DESIGN.md §5. Returns the
 * exit status: 0 drained, 1 the drain timed out. */
static int serve(struct gw_engine *engine, const sigset_t *set, int64_t delay, int64_t drain)
{
    int sig;
    while ((sig = wait_signal(set, 3600 * WARD_NS_PER_S)) == 0 || sig == SIGHUP)
        if (sig == SIGHUP)
            reload();
    atomic_store(&ctx.draining, true);
    WARD_INFO(ctx.log, NULL, "shutting down", WARD_S("signal", strsignal(sig)),
              WARD_D("delay_s", (double)delay / 1e9));
    int64_t until = ward_clock_now(NULL) + delay;
    for (int64_t left; (left = until - ward_clock_now(NULL)) > 0;) {
        sig = wait_signal(set, left);
        if (sig == SIGTERM || sig == SIGINT) {
            WARD_ERROR(ctx.log, NULL, "second signal: exiting at once");
            ward_log_flush(ctx.log);
            _exit(1);
        }
    }
    gw_engine_drain(engine);
    until = ward_clock_now(NULL) + drain;
    while (!gw_engine_drained(engine)) {
        if (ward_clock_now(NULL) >= until) {
            WARD_ERROR(ctx.log, NULL, "drain timed out: cutting what is left");
            return 1;
        }
        sig = wait_signal(set, 5 * WARD_NS_PER_MS);
        if (sig == SIGTERM || sig == SIGINT) {
            WARD_ERROR(ctx.log, NULL, "second signal: exiting at once");
            ward_log_flush(ctx.log);
            _exit(1);
        }
    }
    WARD_INFO(ctx.log, NULL, "drained");
    return 0;
}

int main(int argc, char **argv)
{
    /* blocked before any thread starts, so that every thread inherits the mask and only
     * the main thread's sigtimedwait takes them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    struct gw_engine_settings es = {
        .listen = "127.0.0.1:8080",
        .threads = 0,
        .max_connections = 100000,
        .conn_timeout = 30 * WARD_NS_PER_S,
        .request_timeout = 30 * WARD_NS_PER_S,
    };
    int64_t threads = 0, delay = WARD_NS_PER_S, drain = 30 * WARD_NS_PER_S;
    enum ward_log_level level = WARD_LOG_INFO;
    bool no_access_log = false;
    const char *registry_url = NULL;
    const struct ward_opt opts[] = {
        {"listen", "WARD_LISTEN", WARD_OPT_STRING, &es.listen, "address to listen on, HOST:PORT (port 0 picks one)", 0, 0},
        {"log-level", "WARD_LOG_LEVEL", WARD_OPT_LOG_LEVEL, &level, "debug, info, warn, error or off", 0, 0},
        {"threads", "WARD_THREADS", WARD_OPT_INT, &threads, "worker threads; 0: one per CPU this process may use", 0, 256},
        {"max-connections", "WARD_MAX_CONNECTIONS", WARD_OPT_INT, &es.max_connections, "client connections held at once", 1, 10000000},
        {"conn-timeout", "WARD_CONN_TIMEOUT", WARD_OPT_DURATION, &es.conn_timeout, "how long a client connection may idle or stall mid-request", WARD_NS_PER_S, 3600 * WARD_NS_PER_S},
        {"request-timeout", "WARD_REQUEST_TIMEOUT", WARD_OPT_DURATION, &es.request_timeout, "longest deadline a request may have", 0, 0},
        {"shutdown-delay", "WARD_SHUTDOWN_DELAY", WARD_OPT_DURATION, &delay, "time still serving after SIGTERM, while clients see the gateway going", 0, 0},
        {"drain-timeout", "WARD_DRAIN_TIMEOUT", WARD_OPT_DURATION, &drain, "time in-flight requests get to finish on shutdown", 0, 0},
        {"no-access-log", "WARD_NO_ACCESS_LOG", WARD_OPT_BOOL, &no_access_log, "do not log one line per request", 0, 0},
        {"registry", "WARD_REGISTRY", WARD_OPT_STRING, &registry_url, "where instances are found: consul://HOST:PORT, etcd://HOST:PORT[,...] or static:...; none: every route answers 503", 0, 0},
        {"config", "WARD_GATEWAY_CONFIG", WARD_OPT_STRING, &ctx.config_path, "routes file (YAML, docs/gateway.md); none: the built-in routes", 0, 0},
        {"api-keys", "WARD_API_KEYS", WARD_OPT_STRING, &ctx.keys_path, "API keys file: NAME KEY lines; none: routes with auth answer 401", 0, 0},
        {"admin-listen", "WARD_ADMIN_LISTEN", WARD_OPT_STRING, &ctx.admin_listen, "HOST:PORT of the admin listener (/admin/status, /metrics)", 0, 0},
    };
    switch (ward_config_parse(opts, sizeof opts / sizeof opts[0], argc, argv, "ward-gateway",
                              VERSION, stdout, stderr)) {
    case WARD_CONFIG_OK:
        break;
    case WARD_CONFIG_EXIT:
        return 0;
    case WARD_CONFIG_USAGE:
        return 2;
    }
    es.threads = (int)threads;
    ctx.access_log = !no_access_log;
    ctx.start_mono = ward_clock_now(NULL);

    char err[512];
    struct gw_config *cfg;
    struct gw_keys *keys;
    enum ward_err e = load_files(&cfg, &keys, err, sizeof err);
    if (e != WARD_ERR_OK) {
        fprintf(stderr, "ward-gateway: %s\n", err);
        return 1;
    }
    es.body_limit = cfg->body_limit;
    es.response_limit = cfg->response_limit;

    int rc = 1;
    struct gw_engine *engine = NULL;
    ctx.log = ward_log_new("ward-gateway", level, 2);
    ctx.metrics = ward_metrics_new();
    if (ctx.log == NULL || ctx.metrics == NULL || gw_metrics_init(&ctx) != WARD_ERR_OK) {
        fprintf(stderr, "ward-gateway: out of memory\n");
        gw_config_free(cfg);
        gw_keys_free(keys);
        goto out;
    }
    if (registry_url != NULL && registry_url[0] != '\0') {
        struct ward_registry_settings rs;
        ward_registry_settings_default(&rs);
        rs.url = registry_url;
        rs.log = ctx.log;
        e = ward_registry_new(&rs, &ctx.registry);
    } else {
        WARD_WARN(ctx.log, NULL, "no --registry: every route answers 503 (no instances)");
    }
    if (e != WARD_ERR_OK) {
        WARD_ERROR(ctx.log, NULL, "bad --registry", WARD_S("error", ward_strerror(e)));
        gw_config_free(cfg);
        gw_keys_free(keys);
        rc = 2;
        goto out;
    }
    e = gw_state_new(&ctx, cfg, keys, &ctx.state); /* takes cfg and keys */
    if (e == WARD_ERR_OK)
        e = gw_engine_new(&ctx, &es, &engine);
    if (e == WARD_ERR_ADDRESS) {
        WARD_ERROR(ctx.log, NULL, "bad --listen", WARD_S("listen", es.listen));
        rc = 2;
        goto out;
    }
    if (e == WARD_ERR_OK)
        e = gw_admin_start(&ctx);
    if (e == WARD_ERR_OK)
        e = gw_engine_start(engine);
    if (e != WARD_ERR_OK) {
        WARD_ERROR(ctx.log, NULL, "cannot start", WARD_S("error", ward_strerror(e)));
        goto out;
    }
    WARD_INFO(ctx.log, NULL, "routes", WARD_I("count", ctx.state->nroutes),
              WARD_S("config", ctx.config_path != NULL ? ctx.config_path : "built-in"));
    WARD_INFO(ctx.log, NULL, "listening", WARD_S("listen", es.listen),
              WARD_I("port", gw_engine_port(engine)), WARD_S("version", VERSION));
    rc = serve(engine, &set, delay, drain);
out:
    gw_engine_free(engine);
    gw_admin_stop(&ctx);
    gw_state_put(ctx.state);
    ward_registry_free(ctx.registry);
    ward_metrics_free(ctx.metrics);
    ward_log_free(ctx.log);
    return rc;
}
