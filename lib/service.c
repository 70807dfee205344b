/* service.c — ward_service_main: the common life of every ward daemon, from flags to
 * graceful exit, so that each service's main() only declares itself. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/fault.h>
#include <ward/service.h>

#include "selfreg.h"

struct ward_service {
    const struct ward_service_def *def;
    struct ward_log *log;
    struct ward_metrics *metrics;
    struct ward_server *server;
    struct ward_store *store;
    struct ward_idem *idem;
    const char *registry_url;
};

struct ward_server *ward_service_server(const struct ward_service *svc) { return svc->server; }
struct ward_log *ward_service_log(const struct ward_service *svc) { return svc->log; }
struct ward_metrics *ward_service_metrics(const struct ward_service *svc) { return svc->metrics; }
struct ward_store *ward_service_store(const struct ward_service *svc) { return svc->store; }
const char *ward_service_registry_url(const struct ward_service *svc) { return svc->registry_url; }
struct ward_idem *ward_service_idem(const struct ward_service *svc) { return svc->idem; }

/* The readiness check of the database: a round trip (and pending migrations). */
static enum ward_health check_database(void *arg, char *output, size_t size)
{
    enum ward_err err = ward_store_ping(arg);
    if (err == WARD_ERR_OK)
        return WARD_HEALTH_PASS;
    snprintf(output, size, "%s", ward_strerror(err));
    return WARD_HEALTH_FAIL;
}

/* "sqlite://<cwd>/<name>.db", the default database. */
static char *default_db(const char *name)
{
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return NULL;
    size_t n = strlen(cwd) + strlen(name) + 16;
    char *url = malloc(n);
    if (url != NULL)
        snprintf(url, n, "sqlite://%s/%s.db", strcmp(cwd, "/") == 0 ? "" : cwd, name);
    return url;
}

/* Opens the service's database and idempotency store, adds the readiness check. */
static enum ward_err open_database(struct ward_service *svc, const char *url, int64_t idem_ttl,
                                   int64_t idem_lease)
{
    const struct ward_service_def *def = svc->def;
    struct ward_store_settings ss;
    ward_store_settings_default(&ss);
    ss.url = url;
    ss.service = def->name;
    ss.migrations = def->migrations;
    ss.n_migrations = def->n_migrations;
    ss.log = svc->log;
    enum ward_err err = ward_store_open(&ss, &svc->store);
    if (err != WARD_ERR_OK) {
        WARD_ERROR(svc->log, NULL, "cannot open the database", WARD_S("error", ward_strerror(err)));
        return err;
    }
    err = ward_store_export(svc->store, svc->metrics);
    if (err == WARD_ERR_OK)
        err = ward_server_add_check(svc->server, "database", check_database, svc->store);
    if (err == WARD_ERR_OK && def->idempotency) {
        struct ward_idem_settings is;
        ward_idem_settings_default(&is);
        is.scope = def->name;
        is.ttl = idem_ttl;
        is.lease = idem_lease;
        is.log = svc->log;
        err = ward_idem_new(svc->store, &is, &svc->idem);
    }
    return err;
}

/* Process facts every service exposes: start time and build information. */
static enum ward_err static_metrics(struct ward_metrics *m, const struct ward_service_def *def)
{
    static const char *const labels[] = {"service", "version"};
    struct ward_metric_family *start = ward_metrics_gauge(
        m, "process_start_time_seconds", "Start time of the process since the Unix epoch in seconds.", 0, NULL);
    struct ward_metric_family *info =
        ward_metrics_gauge(m, "ward_build_info", "Always 1: the service name and version as labels.", 2, labels);
    if (start == NULL || info == NULL)
        return WARD_ERR_NOMEM;
    const char *values[] = {def->name, def->version};
    struct ward_metric *s = ward_metric_get(start, NULL);
    struct ward_metric *i = ward_metric_get(info, values);
    if (s == NULL || i == NULL)
        return WARD_ERR_NOMEM;
    ward_gauge_set(s, (double)ward_clock_wall() / 1e9);
    ward_gauge_set(i, 1.0);
    return WARD_ERR_OK;
}

/* DB_THREADS: a service with a database blocks a loop thread for each commit it waits
 * for (an fsync); with several loops one thread's wait is another's work, and
 * concurrent writes share a commit (the store's group commit). */
#define DB_THREADS 4

/* A daemon allocates and frees the same sizes at every request: glibc's defaults give
 * freed heap back to the kernel and fault it in again (9% of payment-service's time
 * under load, measured), so keep up to 64 MiB free per arena and serve blocks up to
 * 8 MiB from the heap. */
static void tune_malloc(void)
{
    (void)mallopt(M_TRIM_THRESHOLD, 64 << 20);
    (void)mallopt(M_TOP_PAD, 16 << 20);
    (void)mallopt(M_MMAP_THRESHOLD, 8 << 20);
}

int ward_service_main(const struct ward_service_def *def, int argc, char **argv)
{
    int rc = 1;
    struct ward_opt *opts = NULL;
    struct ward_service svc = {.def = def};
    bool set_up = false;
    ward_signals_block();

    struct ward_server_config cfg;
    ward_server_config_defaults(&cfg);
    cfg.service = def->name;
    cfg.version = def->version;
    cfg.listen = def->default_listen;
    if (def->migrations != NULL)
        cfg.threads = DB_THREADS;
    tune_malloc();
    enum ward_log_level level = WARD_LOG_INFO;
    bool no_access_log = false;
    const char *advertise = NULL;
    struct ward_registry_settings rs; /* the self-registration's client */
    ward_registry_settings_default(&rs);
    struct ward__selfreg selfreg = {0};
    const char *db_url = NULL;
    char *db_default = NULL;
    int64_t idem_ttl = 24 * 3600 * WARD_NS_PER_S;
    int64_t idem_lease = 60 * WARD_NS_PER_S;
    const struct ward_opt common[] = {
        {"listen", "WARD_LISTEN", WARD_OPT_STRING, &cfg.listen, "address to listen on, HOST:PORT (port 0 picks one)", 0, 0},
        {"log-level", "WARD_LOG_LEVEL", WARD_OPT_LOG_LEVEL, &level, "debug, info, warn, error or off", 0, 0},
        {"threads", "WARD_THREADS", WARD_OPT_INT, &cfg.threads, "event-loop threads", 1, 256},
        {"body-limit", "WARD_BODY_LIMIT", WARD_OPT_SIZE, &cfg.body_limit, "largest request body accepted (413 beyond)", 0, INT64_C(1) << 32},
        {"max-connections", "WARD_MAX_CONNECTIONS", WARD_OPT_INT, &cfg.max_connections, "connections served at once", 1, 1000000},
        {"conn-timeout", "WARD_CONN_TIMEOUT", WARD_OPT_DURATION, &cfg.conn_timeout, "how long a connection may idle or stall mid-request", WARD_NS_PER_S, 3600 * WARD_NS_PER_S},
        {"request-timeout", "WARD_REQUEST_TIMEOUT", WARD_OPT_DURATION, &cfg.request_timeout, "longest deadline a request may have", 0, 0},
        {"shutdown-delay", "WARD_SHUTDOWN_DELAY", WARD_OPT_DURATION, &cfg.shutdown_delay, "time still serving after SIGTERM, while deregistration spreads", 0, 0},
        {"drain-timeout", "WARD_DRAIN_TIMEOUT", WARD_OPT_DURATION, &cfg.drain_timeout, "time in-flight requests get to finish on shutdown", 0, 0},
        {"no-access-log", "WARD_NO_ACCESS_LOG", WARD_OPT_BOOL, &no_access_log, "do not log one line per request", 0, 0},
        {"registry", "WARD_REGISTRY", WARD_OPT_STRING, &rs.url, "register in consul://HOST:PORT or etcd://HOST:PORT[,HOST:PORT...] (or static:...); none: run unregistered", 0, 0},
        {"advertise", "WARD_ADVERTISE", WARD_OPT_STRING, &advertise, "HOST:PORT to register when the listen address is not reachable as it is", 0, 0},
        {"registry-refresh", "WARD_REGISTRY_REFRESH", WARD_OPT_DURATION, &rs.keep_period, "how often anti-entropy checks the registry still knows us", WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
        {"registry-ttl", "WARD_REGISTRY_TTL", WARD_OPT_DURATION, &rs.lease_ttl, "etcd: the registration lease's TTL (kept alive every third of it)", WARD_NS_PER_S, 3600 * WARD_NS_PER_S},
    };
    const struct ward_opt db_opts[] = {
        {"db", "WARD_DB", WARD_OPT_STRING, &db_url, "database: sqlite:///abs/path.db or postgresql://... (default sqlite://<cwd>/<name>.db)", 0, 0},
        {"idempotency-ttl", "WARD_IDEMPOTENCY_TTL", WARD_OPT_DURATION, &idem_ttl, "how long Idempotency-Key answers are kept", WARD_NS_PER_S, 365 * 24 * 3600 * WARD_NS_PER_S},
        {"idempotency-lease", "WARD_IDEMPOTENCY_LEASE", WARD_OPT_DURATION, &idem_lease, "how long a running request holds its Idempotency-Key (409 to others; freed after this if it crashed)", 100 * WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
    };
    size_t ndb = def->migrations == NULL ? 0 : def->idempotency ? 3 : 1;
    size_t ncommon = sizeof common / sizeof common[0];
    size_t nopts = ncommon + ndb + def->nopts;
    opts = calloc(nopts, sizeof *opts);
    if (opts == NULL) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        goto out;
    }
    memcpy(opts, common, sizeof common);
    if (ndb > 0)
        memcpy(opts + ncommon, db_opts, ndb * sizeof *opts);
    if (def->nopts > 0)
        memcpy(opts + ncommon + ndb, def->opts, def->nopts * sizeof *opts);
    switch (ward_config_parse(opts, nopts, argc, argv, def->name, def->version, stdout, stderr)) {
    case WARD_CONFIG_OK:
        break;
    case WARD_CONFIG_EXIT:
        rc = 0;
        goto out;
    case WARD_CONFIG_USAGE:
        rc = 2;
        goto out;
    }
    cfg.access_log = !no_access_log;
    if (def->configure != NULL)
        def->configure(&cfg, def->arg);

    svc.log = ward_log_new(def->name, level, 2);
    svc.metrics = ward_metrics_new();
    if (svc.log == NULL || svc.metrics == NULL || static_metrics(svc.metrics, def) != WARD_ERR_OK) {
        fprintf(stderr, "%s: out of memory\n", def->name);
        goto out;
    }
    enum ward_err err = ward_server_new(&cfg, svc.log, svc.metrics, &svc.server);
    if (err != WARD_ERR_OK) {
        WARD_ERROR(svc.log, NULL, "bad server settings", WARD_S("listen", cfg.listen),
                   WARD_S("error", ward_strerror(err)));
        rc = err == WARD_ERR_ADDRESS ? 2 : 1;
        goto out;
    }
    if (def->migrations != NULL) {
        if (db_url == NULL && (db_url = db_default = default_db(def->name)) == NULL) {
            WARD_ERROR(svc.log, NULL, "cannot name the default database");
            goto out;
        }
        err = open_database(&svc, db_url, idem_ttl, idem_lease);
        if (err != WARD_ERR_OK) {
            rc = err == WARD_ERR_INVAL ? 2 : 1;
            goto out;
        }
    }
    svc.registry_url = rs.url != NULL && rs.url[0] != '\0' ? rs.url : NULL;
    err = def->setup != NULL ? def->setup(&svc, def->arg) : WARD_ERR_OK;
    if (err != WARD_ERR_OK) {
        WARD_ERROR(svc.log, NULL, "setup failed", WARD_S("error", ward_strerror(err)));
        goto out;
    }
    set_up = true;
    if (ward_server_start(svc.server) != WARD_ERR_OK)
        goto out;
    if (ward_fault_armed())
        WARD_WARN(svc.log, NULL, "test faults armed (WARD_FAULTS): not for production",
                  WARD_S("faults", getenv("WARD_FAULTS")));
    WARD_INFO(svc.log, NULL, "listening", WARD_S("listen", cfg.listen),
              WARD_I("port", ward_server_port(svc.server)), WARD_S("version", def->version));
    rs.log = svc.log;
    err = ward__selfreg_start(&selfreg, &rs, def->name, def->version, cfg.listen, advertise,
                              ward_server_port(svc.server));
    if (err == WARD_ERR_OK && selfreg.reg != NULL)
        err = ward_server_on_shutdown(svc.server, ward__selfreg_leave, &selfreg);
    if (err != WARD_ERR_OK) {
        rc = err == WARD_ERR_ADDRESS ? 2 : 1;
        goto out;
    }
    rc = ward_server_run(svc.server);
out:
    ward_server_free(svc.server);
    ward__selfreg_fini(&selfreg);
    if (set_up && def->teardown != NULL)
        def->teardown(&svc, def->arg);
    ward_idem_free(svc.idem);
    ward_store_close(svc.store);
    free(db_default);
    ward_metrics_free(svc.metrics);
    ward_log_free(svc.log);
    free(opts);
    return rc;
}
