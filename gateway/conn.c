/* conn.c — a client connection of the engine: bytes read into a buffer and parsed by
 * http-parser, one request at a time (a pipelined next one waits in the buffer until the
 * answer before it is out), the body kept within its limit, the answer written at once
 * and the rest when the socket can take it, kept alive or closed as HTTP/1.x says. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "gateway.h"

#define READ_CHUNK 16384
#define PENDING_MAX (256 * 1024) /* pipelined bytes held while an answer is due */

enum conn_state { C_READ, C_BUSY, C_WRITE };

struct gw_conn {
    struct gw_conn *next, *prev; /* the worker's list */
    struct gw_io io;
    struct gw_worker *w;
    struct gw_timer timer; /* idle, or stalled mid-request or mid-answer */
    int64_t deadline;      /* when the timer really ends it: moved without touching the heap */
    http_parser parser;
    struct gw_buf in; /* read, not yet parsed */
    size_t in_off;
    struct gw_buf out; /* the answer being written */
    size_t out_off;
    struct gw_request req;
    struct gw_buf target, body;
    enum conn_state state;
    bool in_request;  /* a request's first bytes are in */
    bool head_done;   /* and its header block */
    bool complete;    /* its last ones too */
    int reject;       /* a problem type + 1 to answer instead of dispatching */
    const char *reject_detail;
    bool parsing;     /* within parse(): answers continue there */
    bool draining;
    bool close_after; /* the answer ends the connection */
    bool reading_off; /* EPOLLIN taken out: pipelined bytes are piling up */
    bool head_method;
    bool doomed; /* to close once parse() is back: it still holds c */
    struct gw_exchange *x;
};

static void parse(struct gw_conn *c);

struct gw_conn *gw_conn_next(const struct gw_conn *c) { return c->next; }
void gw_conn_set_exchange(struct gw_conn *c, struct gw_exchange *x) { c->x = x; }

static void conn_free(struct gw_conn *c)
{
    struct gw_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    gw_timer_cancel(w, &c->timer);
    close(c->io.fd); /* leaves the epoll set with it */
    if (c->x != NULL)
        gw_proxy_client_gone(c->x);
    gw_headers_reset(&c->req.headers);
    gw_buf_free(&c->req.headers.buf);
    gw_buf_free(&c->in);
    gw_buf_free(&c->out);
    gw_buf_free(&c->target);
    gw_buf_free(&c->body);
    gw_worker_bury(w, &c->io, c);
    gw_worker_conn_gone(w);
}

static void arm(struct gw_conn *c)
{
    gw_timer_set(c->w, &c->timer, c->w->now + gw_worker_settings(c->w)->conn_timeout);
}

static void on_timer(struct gw_timer *t)
{
    struct gw_conn *c = (struct gw_conn *)((char *)t - offsetof(struct gw_conn, timer));
    if (c->state != C_BUSY) /* idle, stalled mid-request, or not reading its answer */
        conn_free(c);
}

/* ---- http-parser's callbacks -------------------------------------------------------- */

static struct gw_conn *of(http_parser *p) { return p->data; }

static int on_begin(http_parser *p)
{
    struct gw_conn *c = of(p);
    c->in_request = true;
    c->head_done = false;
    c->complete = false;
    c->target.len = 0;
    c->body.len = 0;
    gw_headers_reset(&c->req.headers);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    return gw_buf_add(&of(p)->target, at, n) ? 0 : -1;
}

static int on_field(http_parser *p, const char *at, size_t n)
{
    return gw_headers_field(&of(p)->req.headers, at, n) ? 0 : -1;
}

static int on_value(http_parser *p, const char *at, size_t n)
{
    return gw_headers_value(&of(p)->req.headers, at, n) ? 0 : -1;
}

static void refuse(struct gw_conn *c, enum ward_problem_type type, const char *detail)
{
    c->reject = (int)type + 1;
    c->reject_detail = detail;
    http_parser_pause(&c->parser, 1);
}

static int on_headers(http_parser *p)
{
    struct gw_conn *c = of(p);
    if (!gw_headers_end(&c->req.headers) || !gw_buf_add(&c->target, "", 1))
        return -1;
    c->head_done = true;
    c->head_method = p->method == HTTP_HEAD;
    if (p->upgrade && p->method != HTTP_CONNECT) {
        p->upgrade = 0; /* no protocol switch through the gateway: a plain request */
    } else if (p->method == HTTP_CONNECT) {
        refuse(c, WARD_PROBLEM_METHOD_NOT_ALLOWED, "CONNECT is not proxied");
        return 0;
    }
    int64_t limit = gw_worker_settings(c->w)->body_limit;
    if ((p->flags & F_CHUNKED) == 0 && p->content_length != ULLONG_MAX &&
        p->content_length > (uint64_t)limit) {
        refuse(c, WARD_PROBLEM_BODY_TOO_LARGE, "the request body is larger than the gateway's limit");
        return 0;
    }
    const char *expect = gw_headers_get(&c->req.headers, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!send(c->io.fd, cont, sizeof cont - 1, MSG_NOSIGNAL);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    struct gw_conn *c = of(p);
    if (c->body.len + n > (size_t)gw_worker_settings(c->w)->body_limit) {
        refuse(c, WARD_PROBLEM_BODY_TOO_LARGE, "the request body is larger than the gateway's limit");
        return 0;
    }
    return gw_buf_add(&c->body, at, n) ? 0 : -1;
}

static int on_complete(http_parser *p)
{
    struct gw_conn *c = of(p);
    c->complete = true;
    http_parser_pause(p, 1); /* one request at a time: the next waits for this answer */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

/* ---- answers ------------------------------------------------------------------------ */

/* Which events c waits for (epoll_ctl MOD of a registered socket fails only without
 * kernel memory; the connection's timer ends it then). */
static void watch_out(struct gw_conn *c, bool out)
{
    uint32_t ev = (c->reading_off ? 0 : EPOLLIN) | (out ? EPOLLOUT : 0) | EPOLLRDHUP | EPOLLET;
    (void)gw_worker_rewatch(c->w, &c->io, ev);
}

/* Closes c, or has parse() close it when it is under way there. */
void gw_conn_close(struct gw_conn *c)
{
    if (c->parsing)
        c->doomed = true;
    else
        conn_free(c);
}

/* The answer is out: the next request, or the end. Returns false when c is gone. */
static bool written(struct gw_conn *c)
{
    c->out.len = c->out_off = 0;
    if (c->close_after) {
        gw_conn_close(c);
        return false;
    }
    c->state = C_READ;
    c->in_request = false;
    if (c->reading_off) {
        c->reading_off = false;
        watch_out(c, false);
    }
    arm(c);
    if (!c->parsing && c->in.len > c->in_off)
        parse(c);
    return true;
}

/* Writes what is pending; false when c is gone. */
static bool flush(struct gw_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->io.fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (c->state != C_WRITE) {
                c->state = C_WRITE;
                arm(c);
                watch_out(c, true);
            }
            return true;
        }
        gw_conn_close(c);
        return false;
    }
    if (c->state == C_WRITE && !c->close_after)
        watch_out(c, false);
    return written(c);
}

void gw_conn_respond(struct gw_conn *c, int status, const struct gw_buf *head, const char *body,
                     size_t body_len)
{
    (void)status;
    if (c->state != C_BUSY)
        return;
    c->x = NULL;
    c->close_after = c->close_after || !c->req.keep_alive || c->draining;
    char tail[96];
    int n = snprintf(tail, sizeof tail, "Content-Length: %zu\r\n%s\r\n", body_len,
                     c->close_after     ? "Connection: close\r\n"
                     : c->req.http10 ? "Connection: keep-alive\r\n"
                                     : "");
    if (c->head_method)
        body_len = 0;
    c->out.len = c->out_off = 0;
    if (!gw_buf_reserve(&c->out, head->len + (size_t)n + body_len)) {
        gw_conn_close(c);
        return;
    }
    (void)gw_buf_add(&c->out, head->data, head->len);
    (void)gw_buf_add(&c->out, tail, (size_t)n);
    (void)gw_buf_add(&c->out, body, body_len);
    (void)flush(c);
}

/* ---- reading -------------------------------------------------------------------------- */

static void dispatch(struct gw_conn *c)
{
    c->state = C_BUSY;
    c->req.method = http_method_str((enum http_method)c->parser.method);
    c->req.target = c->target.data;
    c->req.body = c->body.data;
    c->req.body_len = c->body.len;
    c->req.keep_alive = http_should_keep_alive(&c->parser) && !c->draining;
    c->req.http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    if (c->reject != 0) {
        enum ward_problem_type t = (enum ward_problem_type)(c->reject - 1);
        c->reject = 0;
        c->close_after = true; /* the rest of what it sent is not read */
        if (!c->head_done) { /* refused within its head: nothing of it is whole */
            c->req.target = "";
            gw_headers_reset(&c->req.headers);
        }
        gw_proxy_reject(c->w, c, &c->req, t, c->reject_detail);
        return;
    }
    gw_proxy_handle(c->w, c, &c->req);
}

/* Parses what is buffered while the connection is ready for a request. */
static void parse(struct gw_conn *c)
{
    c->parsing = true;
    while (c->state == C_READ && c->in.len > c->in_off) {
        size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off,
                                       c->in.len - c->in_off);
        c->in_off += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
        } else if (e != HPE_OK) {
            if (c->reject == 0)
                c->reject = WARD_PROBLEM_BAD_REQUEST + 1;
            c->reject_detail = http_errno_description(e);
            c->in_off = c->in.len;
            c->complete = true;
        }
        if (!c->complete && c->reject == 0)
            break;
        c->complete = false;
        if (c->in_off == c->in.len)
            c->in.len = c->in_off = 0;
        dispatch(c);
        if (c->doomed) { /* answered at once, and that was the end */
            c->parsing = false;
            conn_free(c);
            return;
        }
    }
    if (c->in_off > 0 && c->in_off == c->in.len)
        c->in.len = c->in_off = 0;
    c->parsing = false;
}

static void on_io(struct gw_io *io, uint32_t events)
{
    struct gw_conn *c = (struct gw_conn *)((char *)io - offsetof(struct gw_conn, io));
    if ((events & EPOLLOUT) && c->state == C_WRITE && !flush(c))
        return;
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
        return;
    /* edge-triggered: read until a read comes back short (the socket is then empty, and
     * what arrives later is a new edge) */
    for (;;) {
        if (c->in.len - c->in_off >= PENDING_MAX) { /* a pipeliner ahead of its answers */
            c->reading_off = true;
            watch_out(c, c->state == C_WRITE);
            return;
        }
        if (c->in_off > 0 && c->in_off == c->in.len)
            c->in.len = c->in_off = 0;
        if (!gw_buf_reserve(&c->in, READ_CHUNK)) {
            conn_free(c);
            return;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = recv(io->fd, c->in.data + c->in.len, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_free(c); /* the client went: an answer due is dropped (499 in the log) */
            return;
        }
        c->in.len += (size_t)n;
        if (c->state == C_READ) {
            arm(c);
            parse(c);
            if (io->on == NULL) /* closed within: buried until the turn ends */
                return;
        }
        if ((size_t)n < room)
            return;
    }
}

void gw_conn_accept(struct gw_worker *w, int fd)
{
    struct gw_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        gw_worker_conn_gone(w);
        return;
    }
    c->w = w;
    c->io = (struct gw_io){.fd = fd, .on = on_io};
    c->timer.fn = on_timer;
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    c->draining = w->drained;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        const void *a = ss.ss_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                                                 : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        if (inet_ntop(ss.ss_family, a, c->req.remote, sizeof c->req.remote) == NULL)
            c->req.remote[0] = '\0';
    }
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    if (!gw_worker_watch(w, &c->io, EPOLLIN | EPOLLRDHUP | EPOLLET)) {
        conn_free(c);
        return;
    }
    arm(c);
}

void gw_conn_drain(struct gw_conn *c)
{
    c->draining = true;
    if (c->state == C_READ && !c->in_request && c->in.len == c->in_off)
        conn_free(c);
}
