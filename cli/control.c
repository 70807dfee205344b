/* control.c — the control socket of `ward up` (<data dir>/ward.sock, a Unix stream socket,
 * only its owner may connect): one request line per connection, one answer, then the
 * end. "status" answers the stack as JSON; "stop NAME" and "start NAME" stop a service
 * (every instance, or one by its label "NAME#2") without restarting it, and start it
 * again. Also the client side, for `ward status|stop|start`. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include <ward/config.h>

#include "cli.h"
#include "up.h"

void cli_control_path(const char *data_dir, char *buf, size_t size)
{
    snprintf(buf, size, "%s/ward.sock", data_dir);
}

static bool address(const char *path, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a->sun_path)
        return false;
    memcpy(a->sun_path, path, strlen(path) + 1);
    return true;
}

bool cli_control_ask(const char *path, const char *request, char **out)
{
    struct sockaddr_un a;
    *out = NULL;
    if (!address(path, &a))
        return false;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    size_t n = strlen(request);
    bool ok = write(fd, request, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    size_t cap = 65536, len = 0;
    char *buf = ok ? malloc(cap) : NULL;
    while (buf != NULL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        if (len + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (b == NULL)
                break;
            buf = b;
        }
        ssize_t r = read(fd, buf + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (buf == NULL)
        return false;
    buf[len] = '\0';
    *out = buf;
    return true;
}

/* ---- the server side, in `ward up` ------------------------------------------------------- */

bool up_control_open(struct up *u)
{
    cli_control_path(u->data_dir, u->ctl_path, sizeof u->ctl_path);
    char *other = NULL;
    if (cli_control_ask(u->ctl_path, "ping", &other)) {
        free(other);
        fprintf(stderr, "ward up: another ward up runs on %s (its socket %s answers)\n",
                u->data_dir, u->ctl_path);
        return false;
    }
    struct sockaddr_un a;
    if (!address(u->ctl_path, &a)) {
        fprintf(stderr, "ward up: %s: the path is too long for a socket\n", u->ctl_path);
        return false;
    }
    (void)unlink(u->ctl_path); /* a stale one: nobody answered */
    u->ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    mode_t old = umask(077); /* the socket is its owner's alone */
    bool ok = u->ctl_fd >= 0 && bind(u->ctl_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
              listen(u->ctl_fd, 16) == 0;
    umask(old);
    if (!ok) {
        fprintf(stderr, "ward up: %s: %s\n", u->ctl_path, strerror(errno));
        return false;
    }
    return true;
}

void up_control_close(struct up *u)
{
    if (u->ctl_fd >= 0) {
        close(u->ctl_fd);
        (void)unlink(u->ctl_path);
    }
    u->ctl_fd = -1;
}

static const char *state_name(enum cli_state s)
{
    static const char *const names[] = {"waiting", "starting", "ready", "restarting",
                                        "stopping", "stopped"};
    return names[s];
}

static char *status_json(struct up *u)
{
    json_t *kids = json_array();
    for (size_t i = 0; i < u->n; i++) {
        struct cli_child *c = &u->kids[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:b}", "label", c->label, "name",
                              c->name, "state", state_name(c->state), "pid", (int)c->pid,
                              "port", (int)c->port, "restarts", c->restarts, "held", c->held);
        if (o != NULL && strcmp(c->name, "ward-gateway") == 0)
            json_object_set_new(o, "admin_port", json_integer(c->admin_port));
        if (o != NULL)
            json_array_append_new(kids, o);
    }
    json_t *doc = json_pack("{s:s, s:s, s:o}", "data_dir", u->data_dir, "registry", u->reg_url,
                            "children", kids);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* stop or start every child named name (or the one labelled so); the answer's text. */
static void stop_start(struct up *u, bool stop, const char *name, char *out, size_t size)
{
    int n = 0;
    for (size_t i = 0; i < u->n; i++) {
        struct cli_child *c = &u->kids[i];
        if (strcmp(c->name, name) != 0 && strcmp(c->label, name) != 0)
            continue;
        if (stop)
            up_stop_child(u, c);
        else
            up_start_child(u, c);
        n++;
    }
    if (n == 0)
        snprintf(out, size, "error: no service %s in this stack\n", name);
    else
        snprintf(out, size, "ok: %s %d instance%s of %s\n", stop ? "stopping" : "starting", n,
                 n == 1 ? "" : "s", name);
}

void up_control_accept(struct up *u)
{
    int fd = accept4(u->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char req[256];
    size_t len = 0;
    while (len < sizeof req - 1) { /* a client sends its line at once: a short wait */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) <= 0)
            break;
        ssize_t r = read(fd, req + len, sizeof req - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (memchr(req, '\n', len) != NULL)
            break;
    }
    req[len] = '\0';
    req[strcspn(req, "\r\n")] = '\0';
    char small[256];
    char *answer = small;
    if (strcmp(req, "ping") == 0) {
        snprintf(small, sizeof small, "pong\n");
    } else if (strcmp(req, "status") == 0) {
        answer = status_json(u);
        if (answer == NULL)
            snprintf(answer = small, sizeof small, "error: out of memory\n");
    } else if (strncmp(req, "stop ", 5) == 0 || strncmp(req, "start ", 6) == 0) {
        bool stop = req[2] == 'o';
        stop_start(u, stop, req + (stop ? 5 : 6), small, sizeof small);
    } else {
        snprintf(small, sizeof small, "error: unknown request \"%.64s\" (status, stop NAME, start NAME)\n", req);
    }
    size_t n = strlen(answer);
    (void)!write(fd, answer, n);
    if (answer != small)
        free(answer);
    close(fd);
}

/* ---- `ward stop|start NAME` -------------------------------------------------------------- */

int cli_stop_start(const char *verb, int argc, char **argv)
{
    const char *data_dir = "./data";
    const struct ward_opt opts[] = {
        {"data-dir", "WARD_DATA", WARD_OPT_STRING, &data_dir, "the data directory of the running ward up", 0, 0},
    };
    char prog[32];
    snprintf(prog, sizeof prog, "ward %s", verb);
    /* the service's name is the one argument that is not a flag */
    const char *name = NULL;
    char *rest[16];
    int nrest = 0;
    for (int i = 0; i < argc && nrest < 15; i++) {
        if (i > 0 && argv[i][0] != '-' && name == NULL &&
            !(strcmp(argv[i - 1], "--data-dir") == 0))
            name = argv[i];
        else
            rest[nrest++] = argv[i];
    }
    rest[nrest] = NULL;
    int parsed = cli_parse_flags(opts, 1, nrest, rest, prog);
    if (parsed >= 0)
        return parsed;
    if (name == NULL) {
        fprintf(stderr, "usage: ward %s [--data-dir DIR] SERVICE\n", verb);
        return 2;
    }
    char path[PATH_MAX + 16], req[256];
    cli_control_path(data_dir, path, sizeof path);
    snprintf(req, sizeof req, "%s %s", verb, name);
    char *answer = NULL;
    if (!cli_control_ask(path, req, &answer)) {
        fprintf(stderr, "ward %s: no ward up answers on %s\n", verb, path);
        return 1;
    }
    fputs(answer, stdout);
    int rc = strncmp(answer, "ok", 2) == 0 ? 0 : 1;
    free(answer);
    return rc;
}
