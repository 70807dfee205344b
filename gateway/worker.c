/* worker.c — the engine's threads: the listener every worker accepts from (epoll's
 * EPOLLEXCLUSIVE wakes one), each worker's epoll loop and timer heap, and the drain and
 * stop that end them (DESIGN.md §5). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ward/clock.h>
#include <ward/log.h>
#include <ward/thread.h>

#include "engine.h"
#include "gateway.h"

struct gw_engine {
    struct gw_ctx *ctx;
    struct gw_engine_settings s;
    char *listen_copy;
    int lfd;
    uint16_t port;
    struct gw_worker *workers;
    int n;
    atomic_long conns; /* client connections, all workers */
};

struct gw_ctx *gw_worker_ctx(struct gw_worker *w) { return w->engine->ctx; }
const struct gw_engine_settings *gw_worker_settings(struct gw_worker *w) { return &w->engine->s; }
uint16_t gw_engine_port(const struct gw_engine *e) { return e->port; }

bool gw_worker_watch(struct gw_worker *w, struct gw_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(w->epfd, EPOLL_CTL_ADD, io->fd, &ev) == 0;
}

bool gw_worker_rewatch(struct gw_worker *w, struct gw_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};
    return epoll_ctl(w->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0;
}

void gw_worker_unwatch(struct gw_worker *w, struct gw_io *io)
{
    (void)epoll_ctl(w->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

void gw_worker_bury(struct gw_worker *w, struct gw_io *io, void *mem)
{
    io->on = NULL;
    io->mem = mem;
    io->buried_next = w->buried;
    w->buried = io;
}

static void free_buried(struct gw_worker *w)
{
    while (w->buried != NULL) {
        struct gw_io *io = w->buried;
        w->buried = io->buried_next;
        free(io->mem);
    }
}

void gw_worker_conn_gone(struct gw_worker *w)
{
    w->nconns--;
    atomic_fetch_sub(&w->engine->conns, 1);
}

/* ---- timers ------------------------------------------------------------------------ */

void gw_timer_set(struct gw_worker *w, struct gw_timer *t, int64_t at)
{
    /* without memory the timer stays off: a connection then waits for its peer, a
     * request for its upstream's answer or the connection's end */
    if (!gw_timers_set(&w->timers, t, at))
        WARD_WARN(w->engine->ctx->log, NULL, "out of memory: a timer is not armed");
}

void gw_timer_cancel(struct gw_worker *w, struct gw_timer *t)
{
    gw_timers_cancel(&w->timers, t);
}

/* ---- the loop ------------------------------------------------------------------------ */

static void on_listen(struct gw_io *io, uint32_t events)
{
    (void)events;
    struct gw_worker *w = (struct gw_worker *)((char *)io - offsetof(struct gw_worker, listen));
    for (int i = 0; i < 64 && w->listening; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                WARD_WARN(w->engine->ctx->log, NULL, "out of file descriptors: refusing");
            return;
        }
        if (atomic_fetch_add(&w->engine->conns, 1) >= w->engine->s.max_connections) {
            atomic_fetch_sub(&w->engine->conns, 1);
            close(fd); /* as libmicrohttpd does past its limit */
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        w->nconns++;
        gw_conn_accept(w, fd);
    }
}

static void on_wake(struct gw_io *io, uint32_t events)
{
    (void)events;
    uint64_t v;
    (void)!read(io->fd, &v, sizeof v);
}

/* The drain, once: no new connections, idle ones closed, busy ones after their answer. */
static void begin_drain(struct gw_worker *w)
{
    w->drained = true;
    if (w->listening) {
        gw_worker_unwatch(w, &w->listen);
        w->listening = false;
    }
    for (struct gw_conn *c = w->conns, *next; c != NULL; c = next) {
        next = gw_conn_next(c);
        gw_conn_drain(c);
    }
}

static void stop_all(struct gw_worker *w)
{
    while (w->conns != NULL)
        gw_conn_close(w->conns);
    gw_proxy_stop(w);
    gw_upstream_close_idle(w);
    free_buried(w);
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    struct ward_log *log = w->engine->ctx->log;
    struct epoll_event evs[256];
    for (;;) {
        int cmd = atomic_load(&w->command);
        if (cmd == 2)
            break;
        if (cmd == 1 && !w->drained)
            begin_drain(w);
        if (w->drained && w->conns == NULL && w->exchanges == NULL)
            break;
        int timeout = -1;
        int64_t next = gw_timers_next(&w->timers);
        if (next != INT64_MAX) {
            int64_t wait = next - ward_clock_now(NULL);
            timeout = wait <= 0 ? 0 : (int)((wait + WARD_NS_PER_MS - 1) / WARD_NS_PER_MS);
        }
        int n = epoll_wait(w->epfd, evs, (int)(sizeof evs / sizeof evs[0]), timeout);
        w->now = ward_clock_now(NULL);
        ward_log_batch_begin(log); /* the turn's access-log lines go in one hand-over */
        for (int i = 0; i < n; i++) {
            struct gw_io *io = evs[i].data.ptr;
            if (io->on != NULL)
                io->on(io, evs[i].events);
        }
        gw_timers_run(&w->timers, w->now);
        ward_log_batch_end(log);
        free_buried(w);
    }
    ward_log_batch_begin(log);
    stop_all(w);
    ward_log_batch_end(log);
    ward_log_batch_release();
    atomic_store(&w->done, true);
    return NULL;
}

/* ---- the engine ------------------------------------------------------------------------ */

static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static enum ward_err bind_listener(struct gw_engine *e)
{
    char *colon = strrchr(e->listen_copy, ':');
    if (colon == NULL || colon == e->listen_copy)
        return WARD_ERR_ADDRESS;
    *colon = '\0';
    char *host = e->listen_copy, *port = colon + 1;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        host[strlen(host) - 1] = '\0';
        host++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    *colon = ':';
    if (rc != 0)
        return WARD_ERR_ADDRESS;
    enum ward_err err = WARD_ERR_SYSTEM;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 4096) == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
            e->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
            e->lfd = fd;
            err = WARD_ERR_OK;
        }
    }
    if (err != WARD_ERR_OK) {
        WARD_ERROR(e->ctx->log, NULL, "cannot listen", WARD_S("listen", e->s.listen),
                   WARD_S("error", strerror(errno)));
        if (fd >= 0)
            close(fd);
    }
    freeaddrinfo(ai);
    return err;
}

enum ward_err gw_engine_new(struct gw_ctx *ctx, const struct gw_engine_settings *s,
                            struct gw_engine **out)
{
    struct gw_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return WARD_ERR_NOMEM;
    e->ctx = ctx;
    e->s = *s;
    e->lfd = -1;
    e->n = s->threads > 0 ? s->threads : cpus();
    e->listen_copy = strdup(s->listen);
    e->workers = calloc((size_t)e->n, sizeof *e->workers);
    enum ward_err err = WARD_ERR_NOMEM;
    if (e->listen_copy == NULL || e->workers == NULL)
        goto fail;
    err = bind_listener(e);
    if (err != WARD_ERR_OK)
        goto fail;
    err = WARD_ERR_SYSTEM;
    for (int i = 0; i < e->n; i++) {
        struct gw_worker *w = &e->workers[i];
        w->engine = e;
        w->epfd = epoll_create1(EPOLL_CLOEXEC);
        w->wake = (struct gw_io){.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .on = on_wake};
        w->listen = (struct gw_io){.fd = e->lfd, .on = on_listen};
        w->pool = gw_pool_new(w);
        w->now = ward_clock_now(NULL);
        if (w->epfd < 0 || w->wake.fd < 0 || w->pool == NULL || !gw_worker_watch(w, &w->wake, EPOLLIN) ||
            !gw_worker_watch(w, &w->listen, EPOLLIN | EPOLLEXCLUSIVE))
            goto fail;
        w->listening = true;
    }
    *out = e;
    return WARD_ERR_OK;
fail:
    gw_engine_free(e);
    return err;
}

enum ward_err gw_engine_start(struct gw_engine *e)
{
    for (int i = 0; i < e->n; i++) {
        enum ward_err err = ward_thread_start(&e->workers[i].thread, worker_main, &e->workers[i]);
        if (err != WARD_ERR_OK)
            return err;
        e->workers[i].started = true;
    }
    return WARD_ERR_OK;
}

static void command(struct gw_engine *e, int cmd)
{
    for (int i = 0; i < e->n; i++) {
        atomic_store(&e->workers[i].command, cmd);
        uint64_t one = 1;
        if (e->workers[i].wake.fd > 0)
            (void)!write(e->workers[i].wake.fd, &one, sizeof one);
    }
}

void gw_engine_drain(struct gw_engine *e)
{
    command(e, 1);
}

bool gw_engine_drained(const struct gw_engine *e)
{
    for (int i = 0; i < e->n; i++)
        if (e->workers[i].started && !atomic_load(&e->workers[i].done))
            return false;
    return true;
}

void gw_engine_free(struct gw_engine *e)
{
    if (e == NULL)
        return;
    if (e->workers != NULL)
        command(e, 2);
    for (int i = 0; i < e->n && e->workers != NULL; i++) {
        struct gw_worker *w = &e->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        else if (w->engine != NULL)
            stop_all(w);
        if (w->epfd > 0)
            close(w->epfd);
        if (w->wake.fd > 0)
            close(w->wake.fd);
        gw_pool_free(w->pool);
        free_buried(w);
        free(w->timers.heap);
    }
    if (e->lfd >= 0)
        close(e->lfd);
    free(e->workers);
    free(e->listen_copy);
    free(e);
}
