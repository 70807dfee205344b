/* service.h — the frame of a ward daemon: flags and environment, logger, metrics,
 * HTTP server, signals and graceful shutdown, so a service's main() is a table. */
#ifndef WARD_SERVICE_H
#define WARD_SERVICE_H

#include <stddef.h>

#include <ward/config.h>
#include <ward/err.h>
#include <ward/http.h>
#include <ward/idempotency.h>
#include <ward/log.h>
#include <ward/metrics.h>
#include <ward/store.h>

struct ward_service;

struct ward_service_def {
    const char *name;           /* "zakat-service": logs, --help, --version */
    const char *version;
    const char *summary;        /* one line for --help */
    const char *default_listen; /* "127.0.0.1:8081" */
    const struct ward_opt *opts; /* the service's own flags, after the common ones */
    size_t nopts;
    /* Registers routes and checks, opens stores. Non-OK ends the process with 1. */
    enum ward_err (*setup)(struct ward_service *svc, void *arg);
    /* Adjusts the server settings after the flags were parsed and before the server is
     * created (error renderer, media types, timeouts). May be NULL. */
    void (*configure)(struct ward_server_config *cfg, void *arg);
    /* Runs after the server stopped (close stores). May be NULL. */
    void (*teardown)(struct ward_service *svc, void *arg);
    void *arg;
    /* A database, when migrations is not NULL: --db URL (WARD_DB; default
     * sqlite://<working directory>/<name>.db) opened before setup with these migrations
     * (a database that is down only makes the service unready), a readiness check
     * "database" (ward_store_ping), store metrics, closed after the server stopped. */
    const struct ward_migration *migrations;
    size_t n_migrations;
    /* With a database: an Idempotency-Key store scoped to the service's name (its
     * migrations must create WARD_IDEM_SCHEMA); --idempotency-ttl (default 24h). */
    bool idempotency;
};

/* Runs a daemon: blocks signals, parses the common flags (--listen, --log-level,
 * --threads, --body-limit, --max-connections, --conn-timeout, --request-timeout,
 * --shutdown-delay, --drain-timeout, --no-access-log, --registry..., --db with a
 * database, --help, --version) and def's own,
 * each with its WARD_* variable; starts logging, metrics and the server; calls setup;
 * serves until a signal and shuts down gracefully. Returns the process exit status:
 * 0 clean, 1 failure or drain timeout, 2 bad flags. */
int ward_service_main(const struct ward_service_def *def, int argc, char **argv);

struct ward_server *ward_service_server(const struct ward_service *svc);
struct ward_log *ward_service_log(const struct ward_service *svc);
struct ward_metrics *ward_service_metrics(const struct ward_service *svc);
/* The --registry URL (NULL when none was given): a service that calls others makes its
 * own ward_registry from it to discover them. Valid until ward_service_main returns. */
const char *ward_service_registry_url(const struct ward_service *svc);
/* The service's database and idempotency store (NULL when it has none). */
struct ward_store *ward_service_store(const struct ward_service *svc);
struct ward_idem *ward_service_idem(const struct ward_service *svc);

#endif
