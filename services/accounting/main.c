/* main.c — accounting-service: the double-entry ledger behind the ward service frame. */
#include <ward/service.h>

#include "accounting.h"

static struct acct_ctx ctx;

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    (void)arg;
    static const struct {
        const char *method, *pattern;
        ward_handler_fn fn;
    } routes[] = {
        {"POST", "/accounts", acct_accounts_post},
        {"GET", "/accounts", acct_accounts_list},
        {"GET", "/accounts/{id}", acct_account_get},
        {"POST", "/transactions", acct_transactions_post},
        {"GET", "/transactions", acct_transactions_list},
        {"GET", "/transactions/{id}", acct_transaction_get},
        {"POST", "/transactions/{id}/reverse", acct_transaction_reverse},
        {"GET", "/ledger/balance", acct_ledger_balance},
    };
    struct ward_server *srv = ward_service_server(svc);
    ctx.store = ward_service_store(svc);
    ctx.idem = ward_service_idem(svc);
    if (ctx.store == NULL || ctx.idem == NULL)
        return WARD_ERR_INVAL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        enum ward_err err = ward_server_route(srv, routes[i].method, routes[i].pattern,
                                              routes[i].fn, &ctx);
        if (err != WARD_ERR_OK)
            return err;
    }
    return WARD_ERR_OK;
}

int main(int argc, char **argv)
{
    const struct ward_service_def def = {
        .name = "accounting-service",
        .version = WARD_VERSION,
        .summary = "double-entry ledger: accounts, balanced transactions, reversals",
        .default_listen = "127.0.0.1:8083",
        .setup = setup,
        .migrations = acct_migrations,
        .n_migrations = acct_n_migrations,
        .idempotency = true,
    };
    return ward_service_main(&def, argc, argv);
}
