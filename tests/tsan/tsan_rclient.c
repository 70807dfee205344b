/* tsan_rclient.c — threads making blocking calls through one resilient client against a
 * small in-process HTTP server, built with ThreadSanitizer: the bulkhead's cap must hold
 * at the server, the breaker must stop the traffic, and every count must add up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/metrics.h>
#include <ward/rclient.h>

#include "tsan_check.h"

#define THREADS 12
#define CALLS 40
#define MAX_CONNS 512
#define SLOTS 3


/* A keep-alive HTTP/1.1 server for bodiless requests: one thread per connection, each
 * answer `status` with an empty body after `delay_us`. It counts requests and the most
 * it ever had in flight at once. */
struct server {
    int lfd;
    uint16_t port;
    pthread_t acceptor;
    atomic_int status;
    atomic_int delay_us;
    atomic_long requests;
    atomic_int inflight;
    atomic_int most_inflight;
    pthread_mutex_t mu; /* guards conns and nconns */
    struct conn {
        pthread_t thread;
        int fd;
    } conns[MAX_CONNS];
    int nconns;
};

struct conn_arg {
    struct server *srv;
    int fd;
};

/* Waits for a whole request head ("\r\n\r\n"); false at EOF or error. */
static bool read_head(int fd)
{
    char buf[4096];
    size_t len = 0;

    while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
        ssize_t n;

        if (len == sizeof buf)
            return false;
        n = read(fd, buf + len, 1); /* byte by byte: no request is ever read into the next */
        if (n <= 0)
            return false;
        len++;
    }
    return true;
}

static void *serve_conn(void *arg)
{
    struct conn_arg *ca = arg;
    struct server *srv = ca->srv;
    int fd = ca->fd;
    char out[128];

    free(ca);
    while (read_head(fd)) {
        int now = atomic_fetch_add(&srv->inflight, 1) + 1;
        int most = atomic_load(&srv->most_inflight);
        int delay = atomic_load(&srv->delay_us);
        int n;

        while (now > most && !atomic_compare_exchange_weak(&srv->most_inflight, &most, now))
            ;
        atomic_fetch_add(&srv->requests, 1);
        if (delay > 0)
            nanosleep(&(struct timespec){.tv_nsec = (long)delay * 1000}, NULL);
        atomic_fetch_sub(&srv->inflight, 1);
        n = snprintf(out, sizeof out, "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n",
                     atomic_load(&srv->status));
        if (write(fd, out, (size_t)n) != n)
            break;
    }
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct server *srv = arg;

    for (;;) {
        struct conn_arg *ca;
        int fd = accept(srv->lfd, NULL, NULL);

        if (fd < 0)
            break;
        ca = malloc(sizeof *ca);
        pthread_mutex_lock(&srv->mu);
        if (ca == NULL || srv->nconns == MAX_CONNS) {
            pthread_mutex_unlock(&srv->mu);
            free(ca);
            close(fd);
            continue;
        }
        *ca = (struct conn_arg){.srv = srv, .fd = fd};
        srv->conns[srv->nconns].fd = fd;
        if (pthread_create(&srv->conns[srv->nconns].thread, NULL, serve_conn, ca) == 0) {
            srv->nconns++;
        } else {
            free(ca);
            close(fd);
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return NULL;
}

static bool server_start(struct server *srv)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;

    memset(srv, 0, sizeof *srv);
    atomic_store(&srv->status, 200);
    pthread_mutex_init(&srv->mu, NULL);
    srv->lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (srv->lfd < 0 || bind(srv->lfd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(srv->lfd, 128) != 0 || getsockname(srv->lfd, (struct sockaddr *)&a, &alen) != 0)
        return false;
    srv->port = ntohs(a.sin_port);
    return pthread_create(&srv->acceptor, NULL, accept_loop, srv) == 0;
}

/* Wakes every thread (shutdown makes accept and read return) and joins them. */
static void server_stop(struct server *srv)
{
    shutdown(srv->lfd, SHUT_RDWR);
    pthread_join(srv->acceptor, NULL);
    close(srv->lfd);
    for (int i = 0; i < srv->nconns; i++) {
        shutdown(srv->conns[i].fd, SHUT_RDWR);
        pthread_join(srv->conns[i].thread, NULL);
        close(srv->conns[i].fd);
    }
    pthread_mutex_destroy(&srv->mu);
}

/* Results of the calls of one run, by error. */
struct run {
    struct ward_rclient *rc;
    atomic_long by_err[64];
};

static void *caller(void *arg)
{
    struct run *run = arg;

    for (int i = 0; i < CALLS; i++) {
        struct ward_http_result res;
        enum ward_err err = ward_rclient_call(run->rc, &(struct ward_http_call){.url = "/x"}, &res);

        atomic_fetch_add(&run->by_err[(unsigned)err < 64 ? err : 63], 1);
        ward_http_result_fini(&res);
    }
    return NULL;
}

static void hammer(struct run *run)
{
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, caller, run);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
}

static double value(struct ward_metrics *reg, const char *series)
{
    char *text = ward_metrics_render(reg, NULL);
    const char *p = text != NULL ? strstr(text, series) : NULL;
    double v = p != NULL ? strtod(p + strlen(series), NULL) : -1;

    free(text);
    return v;
}

static void settings(struct ward_rclient_settings *s, const char *url)
{
    ward_rclient_settings_default(s);
    s->name = "dep";
    s->base_url = url;
}

static void bulkhead_holds_under_blocking_calls(struct server *srv, const char *url)
{
    struct ward_rclient_settings s;
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_bulkhead_stats st;
    struct run run = {0};
    long ok, full, before = atomic_load(&srv->requests);

    settings(&s, url);
    s.bulkhead.settings.max_concurrent = SLOTS;
    atomic_store(&srv->status, 200);
    atomic_store(&srv->delay_us, 2000);
    atomic_store(&srv->most_inflight, 0);
    if (reg == NULL || ward_rclient_new(&s, &run.rc) != WARD_ERR_OK ||
        ward_rclient_export(run.rc, reg) != WARD_ERR_OK) {
        check(false, "bulkhead: client created");
        return;
    }
    hammer(&run);
    ok = atomic_load(&run.by_err[WARD_ERR_OK]);
    full = atomic_load(&run.by_err[WARD_ERR_BULKHEAD_FULL]);
    ward_bulkhead_stats(ward_rclient_bulkhead(run.rc), &st);
    check(ok + full == THREADS * CALLS, "bulkhead: every call is ok or bulkhead_full");
    check(ok > 0 && full > 0, "bulkhead: some calls went through, some were refused");
    check(atomic_load(&srv->requests) - before == ok, "bulkhead: refused calls never reach the server");
    check(atomic_load(&srv->most_inflight) <= SLOTS, "bulkhead: the server never sees more than the cap");
    check(st.in_use == 0 && (long)st.rejections == full, "bulkhead: stats add up, every slot given back");
    check(value(reg, "ward_client_calls_total{dependency=\"dep\",result=\"ok\"}") == (double)ok &&
              value(reg, "ward_client_calls_total{dependency=\"dep\",result=\"bulkhead_full\"}") ==
                  (double)full,
          "bulkhead: calls_total by result adds up");
    ward_rclient_free(run.rc);
    ward_metrics_free(reg);
}

static void breaker_stops_and_recovers_under_blocking_calls(struct server *srv, const char *url)
{
    struct ward_rclient_settings s;
    struct ward_clock *fc = ward_clock_fake_new(0);
    struct ward_breaker_stats bs;
    struct run run = {0}, probe = {0};
    long failed_calls, open, ok, tmr, before = atomic_load(&srv->requests);

    settings(&s, url);
    s.clock = fc;
    s.retry.enable = false;
    atomic_store(&srv->status, 503);
    atomic_store(&srv->delay_us, 0);
    if (fc == NULL || ward_rclient_new(&s, &run.rc) != WARD_ERR_OK) {
        check(false, "breaker: client created");
        ward_clock_free(fc);
        return;
    }
    hammer(&run);
    failed_calls = atomic_load(&run.by_err[WARD_ERR_HTTP_STATUS]);
    open = atomic_load(&run.by_err[WARD_ERR_OPEN]);
    ward_breaker_stats(ward_rclient_breaker(run.rc), &bs);
    check(failed_calls + open == THREADS * CALLS, "breaker: every call is http_status or open");
    check(failed_calls >= 6 && failed_calls <= 6 + THREADS,
          "breaker: it opens after 6 failures (plus the calls already in flight)");
    check(atomic_load(&srv->requests) - before == failed_calls, "breaker: open calls make no request");
    check(bs.state == WARD_BREAKER_OPEN && (long)bs.rejected_open == open && bs.transitions == 1,
          "breaker: open once, every rejection counted");

    ward_clock_fake_advance(fc, 60 * WARD_NS_PER_S);
    atomic_store(&srv->status, 200);
    atomic_store(&srv->delay_us, 1000);
    before = atomic_load(&srv->requests);
    probe.rc = run.rc;
    hammer(&probe);
    ok = atomic_load(&probe.by_err[WARD_ERR_OK]);
    tmr = atomic_load(&probe.by_err[WARD_ERR_TOO_MANY_REQUESTS]);
    check(ok + tmr == THREADS * CALLS && ok >= 1,
          "breaker: half-open lets a probe through, refuses the rest until it closes");
    check(atomic_load(&srv->requests) - before == ok, "breaker: refused probes make no request");
    check(ward_breaker_state(ward_rclient_breaker(run.rc)) == WARD_BREAKER_CLOSED,
          "breaker: closed after the probe succeeded");
    ward_rclient_free(run.rc);
    ward_clock_free(fc);
}

int main(void)
{
    struct server srv;
    char url[64];

    if (!server_start(&srv)) {
        printf("FAIL - server started\n0 passed, 1 failed\n");
        return 1;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)srv.port);
    bulkhead_holds_under_blocking_calls(&srv, url);
    breaker_stops_and_recovers_under_blocking_calls(&srv, url);
    server_stop(&srv);
    return tsan_summary();
}
