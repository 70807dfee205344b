/* main.c — zakat-service: POST /calculate behind the ward service frame. */
#include <ward/service.h>

#include "zakat.h"

static enum ward_err setup(struct ward_service *svc, void *arg)
{
    (void)arg;
    return ward_server_route(ward_service_server(svc), "POST", "/calculate", zk_calculate, NULL);
}

int main(int argc, char **argv)
{
    const struct ward_service_def def = {
        .name = "zakat-service",
        .version = WARD_VERSION,
        .summary = "zakat calculation: POST /calculate",
        .default_listen = "127.0.0.1:8081",
        .setup = setup,
    };
    return ward_service_main(&def, argc, argv);
}
