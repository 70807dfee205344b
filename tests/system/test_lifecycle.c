/* test_lifecycle.c — a daemon's life as an operator sees it: flags, graceful shutdown
 * (DESIGN.md §5), a second signal, the drain timeout, and idle connections. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

TestSuite(lifecycle, .timeout = 90);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char calc_head[] = "POST /calculate HTTP/1.1\r\nHost: t\r\n"
                                "Content-Type: application/json\r\nContent-Length: 29\r\n\r\n"
                                "{\"wealth\":10000,";
static const char calc_tail[] = "\"nisab\":5000}";

Test(lifecycle, help_version_and_bad_flags)
{
    char *out = NULL, *err = NULL;
    const char *help[] = {"--help", NULL};
    cr_assert_eq(h_run("zakat-service", help, &out, &err), 0);
    cr_assert_not_null(strstr(out, "--listen"), "%s", out);
    cr_assert_not_null(strstr(out, "WARD_DRAIN_TIMEOUT"), "%s", out);
    free(out);
    free(err);
    const char *version[] = {"--version", NULL};
    cr_assert_eq(h_run("zakat-service", version, &out, &err), 0);
    cr_assert_not_null(strstr(out, "zakat-service"), "%s", out);
    free(out);
    free(err);
    const char *bogus[] = {"--bogus", NULL};
    cr_assert_eq(h_run("zakat-service", bogus, &out, &err), 2);
    cr_assert_not_null(strstr(err, "--bogus"), "%s", err);
    free(out);
    free(err);
    const char *bad_duration[] = {"--drain-timeout", "5x", NULL};
    cr_assert_eq(h_run("zakat-service", bad_duration, &out, &err), 2);
    cr_assert_not_null(strstr(err, "--drain-timeout"), "%s", err);
    free(out);
    free(err);
    const char *bad_listen[] = {"--listen", "nowhere", NULL};
    cr_assert_eq(h_run("zakat-service", bad_listen, &out, &err), 2);
    free(out);
    free(err);
}

Test(lifecycle, graceful_shutdown_finishes_the_request_in_flight)
{
    const char *args[] = {"--shutdown-delay", "500ms", "--drain-timeout", "10s", NULL};
    struct h_proc *p = h_start("zakat-service", args);
    int fd = h_connect(p->port);
    cr_assert_geq(fd, 0);
    cr_assert(h_send(fd, calc_head, strlen(calc_head)));
    h_sleep_ms(100); /* the headers are in: the request has begun */

    int64_t t0 = now_ms();
    h_signal(p, SIGTERM);
    json_t *line = h_log_wait(p, "\"msg\":\"shutting down\"", 5000);
    cr_assert_not_null(line);
    json_decref(line);

    /* during the delay: still serving, but health says 503 at once */
    struct h_resp r;
    cr_assert(h_http(p->port, "GET", "/health", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 503, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "fail");
    h_resp_free(&r);
    cr_assert(h_http(p->port, "GET", "/ready", NULL, NULL, 0, &r));
    cr_assert_eq(r.status, 503);
    h_resp_free(&r);

    /* after the delay: the listener is closed */
    line = h_log_wait(p, "\"msg\":\"listener closed; draining\"", 5000);
    cr_assert_not_null(line);
    json_decref(line);
    cr_assert_geq(now_ms() - t0, 450);
    int refused = h_connect(p->port);
    cr_assert_lt(refused, 0, "a new connection was accepted after the shutdown delay");

    /* the request whose body was still arriving completes */
    cr_assert(h_send(fd, calc_tail, strlen(calc_tail)));
    char *body = NULL;
    cr_assert_eq(h_read_response(fd, 5000, &body), 200);
    cr_assert_not_null(strstr(body, "\"zakat_due\":\"250.00\""), "%s", body);
    free(body);
    close(fd);

    cr_assert_eq(h_wait(p, 10000), 0);
    cr_assert_lt(now_ms() - t0, 10000);
    h_free(p);
}

Test(lifecycle, second_signal_exits_at_once_with_1)
{
    const char *args[] = {"--shutdown-delay", "5s", "--drain-timeout", "30s", NULL};
    struct h_proc *p = h_start("zakat-service", args);
    h_signal(p, SIGTERM);
    json_t *line = h_log_wait(p, "\"msg\":\"shutting down\"", 5000);
    cr_assert_not_null(line);
    json_decref(line);
    int64_t t0 = now_ms();
    h_signal(p, SIGINT);
    cr_assert_eq(h_wait(p, 3000), 1);
    cr_assert_lt(now_ms() - t0, 2000);
    h_free(p);
}

Test(lifecycle, drain_timeout_cuts_off_and_exits_1)
{
    const char *args[] = {"--shutdown-delay", "0", "--drain-timeout", "300ms", NULL};
    struct h_proc *p = h_start("zakat-service", args);
    int fd = h_connect(p->port);
    cr_assert(h_send(fd, calc_head, strlen(calc_head)));
    h_sleep_ms(100);
    int64_t t0 = now_ms();
    h_signal(p, SIGTERM);
    cr_assert_eq(h_wait(p, 10000), 1);
    int64_t took = now_ms() - t0;
    cr_assert(took >= 250 && took < 5000, "drain took %lld ms", (long long)took);
    close(fd);
    h_free(p);
}

Test(lifecycle, idle_connections_do_not_starve_others)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2048 && rl.rlim_max >= 2048) {
        rl.rlim_cur = 2048;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct h_proc *p = h_start("zakat-service", NULL);
    enum { IDLE = 500 };
    int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = h_connect(p->port);
        cr_assert_geq(fds[i], 0, "connection %d: %s", i, strerror(errno));
        /* half a request line: never finished */
        cr_assert(h_send(fds[i], "POST /calculate HTTP/1.1\r\nHost: idle\r\n", 38));
    }
    int64_t t0 = now_ms();
    struct h_resp r;
    static const char *const ct[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"wealth\":10000,\"nisab\":5000}";
    cr_assert(h_http(p->port, "POST", "/calculate", ct, body, strlen(body), &r));
    cr_assert_eq(r.status, 200);
    h_resp_free(&r);
    cr_assert_lt(now_ms() - t0, 2000, "a client waited behind idle connections");
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
    cr_assert_eq(h_stop(p, 10000), 0);
    h_free(p);
}
