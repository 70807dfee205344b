/* bare_mhd.c — the reference for HTTP benchmarks: libmicrohttpd with one epoll thread
 * answering every request with a fixed JSON body, reading and ignoring any body. No
 * routing, parsing, logging or metrics: the ceiling ward's server is measured against. */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char reply[] = "{\"wealth\":\"10000.00\",\"nisab\":\"5000.00\",\"zakat_due\":\"250.00\","
                            "\"is_eligible\":true,\"currency\":\"USD\",\"nisab_basis\":\"given\"}";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **ctx)
{
    struct MHD_Response *resp = cls;
    (void)url, (void)method, (void)version, (void)data;
    if (*ctx == NULL) {
        *ctx = conn;
        return MHD_YES;
    }
    if (*size > 0) {
        *size = 0;
        return MHD_YES;
    }
    return MHD_queue_response(conn, MHD_HTTP_OK, resp);
}

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 8090;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(reply), (void *)(size_t)reply, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL || MHD_add_response_header(resp, "Content-Type", "application/json") != MHD_YES)
        return 1;
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO,
                                            (uint16_t)port, NULL, NULL, on_request, resp,
                                            MHD_OPTION_CONNECTION_LIMIT, 10000u,
                                            MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare-mhd: cannot listen on %u\n", port);
        return 1;
    }
    fprintf(stderr, "bare-mhd: listening on %u\n", port);
    int sig;
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(resp);
    return 0;
}
