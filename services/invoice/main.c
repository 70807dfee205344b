/* main.c — invoice-service: invoices open → paid | void, on SQLite or PostgreSQL. */
#include <ward/service.h>

#include "invoice.h"

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    (void)arg;
    struct ward_server *srv = ward_service_server(svc);
    enum ward_err err = ward_server_route(srv, "POST", "/invoices", inv_invoices_post, svc);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/invoices", inv_invoices_list, svc);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "GET", "/invoices/{id}", inv_invoices_get, svc);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "POST", "/invoices/{id}/pay", inv_invoices_pay, svc);
    if (err == WARD_ERR_OK)
        err = ward_server_route(srv, "POST", "/invoices/{id}/void", inv_invoices_void, svc);
    return err;
}

int main(int argc, char **argv)
{
    const struct ward_service_def def = {
        .name = "invoice-service",
        .version = WARD_VERSION,
        .summary = "invoices: POST /invoices, GET /invoices[/{id}], POST /invoices/{id}/pay|void",
        .default_listen = "127.0.0.1:8082",
        .setup = setup,
        .migrations = inv_migrations,
        .n_migrations = inv_n_migrations,
        .idempotency = true,
    };
    return ward_service_main(&def, argc, argv);
}
