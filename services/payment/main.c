/* main.c — payment-service: POST /payments runs the payment saga (invoice → ledger → pay,
 * compensated by a void) durably, driven by a worker pool and resumed by recovery. */
#include <string.h>

#include <ward/service.h>
#include <ward/thread.h>

#include "pay.h"

static struct pay_ctx ctx = {
    .workers = 64, /* each waits on a downstream answer or a commit nearly all the time */
    .ledger_rate = 100,
    .ledger_burst = 100,
    .step_timeout = 2 * WARD_NS_PER_S,
    .recovery_interval = 2 * WARD_NS_PER_S,
    .lease = 10 * WARD_NS_PER_S,
    .retry_max = 30 * WARD_NS_PER_S,
    .breaker_timeout = 60 * WARD_NS_PER_S,
    .invoice_addr = "127.0.0.1:8082",
    .accounting_addr = "127.0.0.1:8083",
};

static const struct ward_opt opts[] = {
    {"workers", "WARD_WORKERS", WARD_OPT_INT, &ctx.workers, "threads driving payment sagas", 1, 1024},
    {"invoice-addr", "WARD_INVOICE_ADDR", WARD_OPT_STRING, &ctx.invoice_addr, "invoice-service HOST:PORT when there is no --registry", 0, 0},
    {"accounting-addr", "WARD_ACCOUNTING_ADDR", WARD_OPT_STRING, &ctx.accounting_addr, "accounting-service HOST:PORT when there is no --registry", 0, 0},
    {"ledger-rate", "WARD_LEDGER_RATE", WARD_OPT_INT, &ctx.ledger_rate, "calls per second to accounting-service (excess waits)", 1, 1000000},
    {"ledger-burst", "WARD_LEDGER_BURST", WARD_OPT_INT, &ctx.ledger_burst, "burst of calls to accounting-service", 1, 1000000},
    {"step-timeout", "WARD_STEP_TIMEOUT", WARD_OPT_DURATION, &ctx.step_timeout, "deadline of one step's call, retries included", WARD_NS_PER_MS, 600 * WARD_NS_PER_S},
    {"recovery-interval", "WARD_RECOVERY_INTERVAL", WARD_OPT_DURATION, &ctx.recovery_interval, "how often pending payments whose lease ran out are claimed", 10 * WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
    {"lease", "WARD_LEASE", WARD_OPT_DURATION, &ctx.lease, "how long an instance owns a payment without renewing it (longer than --step-timeout)", 100 * WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
    {"breaker-timeout", "WARD_BREAKER_TIMEOUT", WARD_OPT_DURATION, &ctx.breaker_timeout, "how long invoice-service's circuit breaker stays open before a probe", 10 * WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
    {"retry-max", "WARD_RETRY_MAX", WARD_OPT_DURATION, &ctx.retry_max, "longest wait before a step is tried again after an ambiguous outcome", 250 * WARD_NS_PER_MS, 3600 * WARD_NS_PER_S},
};

/* Graceful shutdown: the waiting requests get their answer now (202 while pending). */
static void on_shutdown(void *arg)
{
    pay_waiters_flush(arg);
}

static void teardown(struct ward_service *svc, void *arg)
{
    (void)svc;
    struct pay_ctx *c = arg;
    atomic_store(&c->stopping, true);
    pay_recovery_stop(c);
    pay_workers_stop(c);
    pay_waiters_stop(c);
    pay_clients_free(c);
    pay_accounts_fini(&c->accounts);
}

static enum ward_err init_sync(struct pay_ctx *c)
{
    if (pthread_mutex_init(&c->queue.lock, NULL) != 0 || pthread_cond_init(&c->queue.cond, NULL) != 0 ||
        pthread_mutex_init(&c->waiters.lock, NULL) != 0 ||
        pthread_mutex_init(&c->recovery.lock, NULL) != 0 ||
        pthread_mutex_init(&c->accounts.lock, NULL) != 0)
        return WARD_ERR_SYSTEM;
    enum ward_err err = ward_cond_init_monotonic(&c->waiters.cond);
    return err == WARD_ERR_OK ? ward_cond_init_monotonic(&c->recovery.cond) : err;
}

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    struct pay_ctx *c = arg;
    struct ward_server *srv = ward_service_server(svc);
    c->svc = svc;
    c->store = ward_service_store(svc);
    c->idem = ward_service_idem(svc);
    c->log = ward_service_log(svc);
    enum ward_err err = init_sync(c);
    if (err != WARD_ERR_OK)
        return err;
    err = ward_id_new("inst", c->owner, sizeof c->owner);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "POST", "/payments", pay_payments_post, c);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/payments", pay_payments_list, c);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/payments/{id}", pay_payments_get, c);
    if (err == WARD_ERR_OK)
        err = ward_server_on_shutdown(srv, on_shutdown, c);
    if (err == WARD_ERR_OK)
        err = pay_clients_new(c);
    if (err == WARD_ERR_OK)
        err = pay_waiters_start(c);
    if (err == WARD_ERR_OK)
        err = pay_workers_start(c);
    if (err == WARD_ERR_OK)
        err = pay_recovery_start(c);
    if (err != WARD_ERR_OK) {
        teardown(svc, c); /* the frame calls teardown only after a setup that succeeded */
        return err;
    }
    WARD_INFO(c->log, NULL, "payment saga running", WARD_S("owner", c->owner),
              WARD_I("workers", c->workers));
    return WARD_ERR_OK;
}

int main(int argc, char **argv)
{
    const struct ward_service_def def = {
        .name = "payment-service",
        .version = WARD_VERSION,
        .summary = "payments: POST /payments (the payment saga), GET /payments[/{id}]",
        .default_listen = "127.0.0.1:8084",
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
        .setup = setup,
        .teardown = teardown,
        .arg = &ctx,
        .migrations = pay_migrations,
        .n_migrations = pay_n_migrations,
        .idempotency = true,
    };
    return ward_service_main(&def, argc, argv);
}
