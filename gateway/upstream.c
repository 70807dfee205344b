/* upstream.c — the engine's connections to upstream instances: a pool per worker and
 * per instance address of kept-alive connections (taken last in, first out, so that the
 * warm ones stay warm), new ones connected without blocking, the request written with one
 * writev, the answer parsed by http-parser within the response limit. A kept-alive
 * connection the instance had closed meanwhile fails before any answer byte: the request
 * is then sent once more on a new connection, as browsers and libcurl do. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"

#define IDLE_MAX 512 /* kept-alive connections per instance and worker */
#define AUTH_MAX 256

enum up_state { U_CONNECTING, U_SENDING, U_READING, U_IDLE };

struct gw_upconn {
    struct gw_upconn *next, *prev; /* the instance's idle list, or the pool's busy list */
    struct gw_io io;
    struct gw_pool *pool;
    struct upinst *inst;
    enum up_state state;
    http_parser parser;
    struct gw_upcall *u;
    size_t sent;      /* bytes of the request written */
    bool reused;      /* it served a request before */
    bool got_bytes;   /* some of the answer came */
    bool complete;
    bool too_large;
    bool out_watch;   /* waiting for EPOLLOUT (connecting, or a full socket) */
    int64_t idle_since;
    struct gw_headers headers;
    struct gw_buf body;
};

/* An instance: its address, resolved once, and its idle connections. */
struct upinst {
    char authority[AUTH_MAX];
    struct sockaddr_storage addr;
    socklen_t alen;
    struct gw_upconn *idle;
    size_t nidle;
};

struct gw_pool {
    struct gw_worker *w;
    struct upinst *insts;
    size_t ninsts, capinsts;
    struct gw_upconn *busy;
    size_t response_limit;
    char scratch[65536];
};

struct gw_pool *gw_pool_new(struct gw_worker *w)
{
    struct gw_pool *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->w = w;
    return p;
}

/* ---- lists ------------------------------------------------------------------------- */

static void unlink_from(struct gw_upconn **head, struct gw_upconn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        *head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
}

static void link_to(struct gw_upconn **head, struct gw_upconn *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head != NULL)
        (*head)->prev = c;
    *head = c;
}

static struct gw_upconn **list_of(struct gw_upconn *c)
{
    return c->state == U_IDLE ? &c->inst->idle : &c->pool->busy;
}

static void conn_free(struct gw_upconn *c)
{
    unlink_from(list_of(c), c);
    if (c->state == U_IDLE)
        c->inst->nidle--;
    close(c->io.fd);
    gw_buf_free(&c->headers.buf);
    gw_buf_free(&c->body);
    gw_worker_bury(c->pool->w, &c->io, c);
}

/* ---- instances ---------------------------------------------------------------------- */

static struct upinst *instance(struct gw_pool *p, const char *authority)
{
    for (size_t i = 0; i < p->ninsts; i++)
        if (strcmp(p->insts[i].authority, authority) == 0)
            return &p->insts[i];
    if (strlen(authority) >= AUTH_MAX)
        return NULL;
    char host[AUTH_MAX];
    snprintf(host, sizeof host, "%s", authority);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return NULL;
    *colon = '\0';
    char *h = host;
    if (h[0] == '[' && colon > h + 1 && colon[-1] == ']') {
        colon[-1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(h, colon + 1, &hints, &ai) != 0)
        return NULL;
    if (p->ninsts == p->capinsts) {
        /* instances come and go, but their number per worker stays small: the array is
         * kept, with the idle lists that point into it moved along */
        size_t cap = p->capinsts ? p->capinsts * 2 : 8;
        struct upinst *n = calloc(cap, sizeof *n);
        if (n == NULL) {
            freeaddrinfo(ai);
            return NULL;
        }
        if (p->ninsts > 0)
            memcpy(n, p->insts, p->ninsts * sizeof *n);
        for (size_t i = 0; i < p->ninsts; i++)
            for (struct gw_upconn *c = n[i].idle; c != NULL; c = c->next)
                c->inst = &n[i];
        for (struct gw_upconn *c = p->busy; c != NULL; c = c->next)
            c->inst = &n[c->inst - p->insts];
        free(p->insts);
        p->insts = n;
        p->capinsts = cap;
    }
    struct upinst *in = &p->insts[p->ninsts++];
    memset(in, 0, sizeof *in);
    snprintf(in->authority, sizeof in->authority, "%s", authority);
    memcpy(&in->addr, ai->ai_addr, ai->ai_addrlen);
    in->alen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return in;
}

/* ---- the answer ---------------------------------------------------------------------- */

static struct gw_upconn *of(http_parser *p) { return p->data; }

static int on_begin(http_parser *p)
{
    struct gw_upconn *c = of(p);
    c->got_bytes = true;
    gw_headers_reset(&c->headers);
    c->body.len = 0;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    return gw_headers_field(&of(p)->headers, at, n) ? 0 : -1;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    return gw_headers_value(&of(p)->headers, at, n) ? 0 : -1;
}

static int on_headers(http_parser *p)
{
    struct gw_upconn *c = of(p);
    if (!gw_headers_end(&c->headers))
        return -1;
    return c->u != NULL && c->u->head_method ? 1 : 0; /* 1: no body follows */
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_upconn *c = of(p);
    if (c->body.len + n > c->pool->response_limit) {
        c->too_large = true;
        http_parser_pause(p, 1);
        return 0;
    }
    return gw_buf_add(&c->body, at, n) ? 0 : -1;
}

static int on_complete(http_parser *p)
{
    struct gw_upconn *c = of(p);
    if (p->status_code >= 100 && p->status_code < 200)
        return 0; /* an interim answer: the real one follows */
    c->complete = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* ---- the call ------------------------------------------------------------------------- */

static void send_on(struct gw_upconn *c);
static void start_on(struct gw_worker *w, struct upinst *in, struct gw_upcall *u);

static void deliver_later(struct gw_timer *t)
{
    struct gw_upcall *u = (struct gw_upcall *)((char *)t - offsetof(struct gw_upcall, later));
    struct ward_http_result res = {.sent = u->later_sent};
    u->done(u, u->later_err, &res);
}

static void fail_later(struct gw_upcall *u, enum ward_err err, bool sent)
{
    u->later_err = err;
    u->later_sent = sent;
    u->later.fn = deliver_later;
    gw_timer_set(u->w, &u->later, 0);
}

/* The attempt on c failed: once more on a new connection when c was a kept-alive one
 * that never answered (the instance closed it while idle), else the error. */
static void failed(struct gw_upconn *c, enum ward_err err)
{
    struct gw_upcall *u = c->u;
    struct upinst *in = c->inst;
    struct gw_worker *w = c->pool->w;
    bool sent = c->sent > 0 || c->state == U_READING;
    /* a kept-alive connection that died before any byte of the answer: most likely closed
     * by the instance as it was being reused, so the request never reached it; sent once
     * more when that is safe even if it did */
    bool stale = c->reused && !c->got_bytes && !u->retried_stale && u->resend_ok;
    u->conn = NULL;
    c->u = NULL;
    conn_free(c);
    if (stale) {
        u->retried_stale = true;
        start_on(w, in, u);
        return;
    }
    if (u->starting) { /* done never runs within gw_upcall_start */
        fail_later(u, err, sent);
        return;
    }
    struct ward_http_result res = {.sent = sent};
    u->done(u, err, &res);
}

static void swap(struct gw_buf *a, struct gw_buf *b)
{
    struct gw_buf t = *a;
    *a = *b;
    *b = t;
}

static void answered(struct gw_upconn *c)
{
    struct gw_upcall *u = c->u;
    if (!gw_buf_add(&c->body, "", 1)) { /* the body is NUL-terminated for convenience */
        failed(c, WARD_ERR_NOMEM);
        return;
    }
    u->answer_body.len = u->answer_headers.len = 0;
    swap(&u->answer_body, &c->body);
    swap(&u->answer_headers, &c->headers.buf);
    struct ward_http_result res = {
        .status = c->parser.status_code,
        .sent = true,
        .body = u->answer_body.data,
        .body_len = u->answer_body.len - 1,
        .headers_ = u->answer_headers.data,
        .headers_len_ = u->answer_headers.len,
    };
    gw_headers_reset(&c->headers);
    c->body.len = 0;
    bool keep = http_should_keep_alive(&c->parser) && c->inst->nidle < IDLE_MAX;
    u->conn = NULL;
    c->u = NULL;
    if (keep) {
        unlink_from(&c->pool->busy, c);
        c->state = U_IDLE;
        c->reused = true;
        c->idle_since = c->pool->w->now;
        link_to(&c->inst->idle, c);
        c->inst->nidle++;
    } else {
        conn_free(c);
    }
    u->done(u, WARD_ERR_OK, &res);
}

/* Reads and parses what came; edge-triggered, so until a read comes back short. */
static void read_answer(struct gw_upconn *c)
{
    for (;;) {
        ssize_t n = recv(c->io.fd, c->pool->scratch, sizeof c->pool->scratch, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            failed(c, WARD_ERR_TRANSPORT);
            return;
        }
        size_t len = (size_t)n;
        size_t done = http_parser_execute(&c->parser, &settings, c->pool->scratch, len);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        if (c->too_large) {
            failed(c, WARD_ERR_TOO_LARGE);
            return;
        }
        if (c->complete) {
            if (done < len) /* bytes after the answer: not a connection to keep */
                c->parser.flags |= F_CONNECTION_CLOSE;
            answered(c);
            return;
        }
        if ((e != HPE_OK && e != HPE_PAUSED) || n == 0) {
            failed(c, WARD_ERR_TRANSPORT);
            return;
        }
        if (len < sizeof c->pool->scratch)
            return;
    }
}

static void on_io(struct gw_io *io, uint32_t events)
{
    struct gw_upconn *c = (struct gw_upconn *)((char *)io - offsetof(struct gw_upconn, io));
    switch (c->state) {
    case U_IDLE: /* the instance closed it, or said something unasked: gone either way */
        conn_free(c);
        return;
    case U_CONNECTING: {
        int soerr = 0;
        socklen_t l = sizeof soerr;
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &l) != 0 || soerr != 0 ||
            (events & (EPOLLERR | EPOLLHUP))) {
            failed(c, WARD_ERR_CONNECT);
            return;
        }
        c->state = U_SENDING;
        send_on(c);
        return;
    }
    case U_SENDING:
        if (events & (EPOLLERR | EPOLLHUP)) {
            failed(c, WARD_ERR_TRANSPORT);
            return;
        }
        send_on(c);
        return;
    case U_READING:
        read_answer(c);
        return;
    }
}

static void send_on(struct gw_upconn *c)
{
    struct gw_upcall *u = c->u;
    size_t total = u->req.len + u->body_len;
    while (c->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < u->req.len)
            iov[n++] = (struct iovec){u->req.data + c->sent, u->req.len - c->sent};
        size_t boff = c->sent > u->req.len ? c->sent - u->req.len : 0;
        if (u->body_len > boff)
            iov[n++] = (struct iovec){(void *)(uintptr_t)(u->body + boff), u->body_len - boff};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(c->io.fd, &mh, MSG_NOSIGNAL);
        if (w > 0) {
            c->sent += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->out_watch)
                (void)gw_worker_rewatch(c->pool->w, &c->io, EPOLLOUT | EPOLLRDHUP | EPOLLET);
            c->out_watch = true;
            return;
        }
        failed(c, c->sent == 0 && !c->reused ? WARD_ERR_CONNECT : WARD_ERR_TRANSPORT);
        return;
    }
    c->state = U_READING;
    if (c->out_watch)
        (void)gw_worker_rewatch(c->pool->w, &c->io, EPOLLIN | EPOLLRDHUP | EPOLLET);
    c->out_watch = false;
}

/* A new connection to in for u. */
static void connect_new(struct gw_worker *w, struct upinst *in, struct gw_upcall *u)
{
    struct gw_pool *p = w->pool;
    int fd = socket(in->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fail_later(u, WARD_ERR_CONNECT, false);
        return;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    int rc = connect(fd, (struct sockaddr *)&in->addr, in->alen);
    if (rc != 0 && errno != EINPROGRESS) {
        close(fd);
        fail_later(u, WARD_ERR_CONNECT, false);
        return;
    }
    struct gw_upconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        fail_later(u, WARD_ERR_NOMEM, false);
        return;
    }
    c->io = (struct gw_io){.fd = fd, .on = on_io};
    c->pool = p;
    c->inst = in;
    c->state = rc == 0 ? U_SENDING : U_CONNECTING;
    c->out_watch = rc != 0;
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->u = u;
    u->conn = c;
    link_to(&p->busy, c);
    if (!gw_worker_watch(w, &c->io, (rc == 0 ? EPOLLIN : EPOLLOUT) | EPOLLRDHUP | EPOLLET)) {
        u->conn = NULL;
        c->u = NULL;
        conn_free(c);
        fail_later(u, WARD_ERR_CONNECT, false);
        return;
    }
    if (rc == 0)
        send_on(c);
}

static void start_on(struct gw_worker *w, struct upinst *in, struct gw_upcall *u)
{
    struct gw_upconn *c = in->idle;
    while (c != NULL && w->now - c->idle_since > GW_UPSTREAM_IDLE_NS) {
        conn_free(c); /* the newest first: an old one means all behind it are older */
        c = in->idle;
    }
    if (c == NULL || u->retried_stale) {
        connect_new(w, in, u);
        return;
    }
    unlink_from(&in->idle, c);
    in->nidle--;
    c->state = U_SENDING;
    link_to(&w->pool->busy, c);
    http_parser_init(&c->parser, HTTP_RESPONSE);
    c->parser.data = c;
    c->got_bytes = c->complete = c->too_large = false;
    c->sent = 0;
    c->u = u;
    u->conn = c;
    send_on(c);
}

void gw_upcall_start(struct gw_worker *w, const char *authority, struct gw_upcall *u)
{
    u->w = w;
    u->conn = NULL;
    u->retried_stale = false;
    w->pool->response_limit = (size_t)gw_worker_settings(w)->response_limit;
    struct upinst *in = instance(w->pool, authority);
    if (in == NULL) {
        fail_later(u, WARD_ERR_CONNECT, false);
        return;
    }
    u->starting = true;
    start_on(w, in, u);
    u->starting = false;
}

void gw_upcall_abort(struct gw_upcall *u)
{
    if (u->w != NULL)
        gw_timer_cancel(u->w, &u->later);
    if (u->conn != NULL) {
        u->conn->u = NULL;
        conn_free(u->conn);
        u->conn = NULL;
    }
}

void gw_upstream_close_idle(struct gw_worker *w)
{
    struct gw_pool *p = w->pool;
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->ninsts; i++)
        while (p->insts[i].idle != NULL)
            conn_free(p->insts[i].idle);
}

void gw_pool_free(struct gw_pool *p)
{
    if (p == NULL)
        return;
    while (p->busy != NULL) /* their calls were ended by gw_proxy_stop */
        conn_free(p->busy);
    for (size_t i = 0; i < p->ninsts; i++)
        while (p->insts[i].idle != NULL)
            conn_free(p->insts[i].idle);
    free(p->insts);
    free(p);
}
