/* child.c — one process of the stack under `ward up`: started in a process group of its
 * own (so that the terminal's Ctrl-C reaches `ward up` alone, which stops the stack in
 * order), its output relayed line by line to the terminal with its name in front and
 * kept in its log file, its ports read from its "listening" lines, its readiness asked
 * of its /ready. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <ward/clock.h>
#include <ward/config.h>
#include <ward/httpc.h>

#include "cli.h"

int64_t cli_now(void)
{
    return ward_clock_now(NULL);
}

int cli_parse_flags(const struct ward_opt *opts, size_t n, int argc, char **argv,
                    const char *prog)
{
    switch (ward_config_parse(opts, n, argc, argv, prog, CLI_VERSION, stdout, stderr)) {
    case WARD_CONFIG_OK:
        return -1;
    case WARD_CONFIG_EXIT:
        return 0;
    case WARD_CONFIG_USAGE:
    default:
        return 2;
    }
}

bool cli_child_arg(struct cli_child *c, const char *arg)
{
    if (c->argc + 1 >= sizeof c->argv / sizeof c->argv[0])
        return false;
    char *copy = strdup(arg);
    if (copy == NULL)
        return false;
    c->argv[c->argc++] = copy;
    c->argv[c->argc] = NULL;
    return true;
}

void cli_child_fini(struct cli_child *c)
{
    for (size_t i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
    if (c->out >= 0)
        close(c->out);
    if (c->log_fd >= 0)
        close(c->log_fd);
    c->out = c->log_fd = -1;
}

bool cli_child_spawn(struct cli_child *c)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "ward: %s: pipe: %s\n", c->label, strerror(errno));
        return false;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ward: %s: fork: %s\n", c->label, strerror(errno));
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        /* the child: its own process group, the signals `ward up` holds for itself back
         * to their defaults, its output into the pipe */
        setpgid(0, 0);
        /* if ward up itself dies (even by SIGKILL), its children stop gracefully too */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1); /* it died before prctl took */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        execv(c->argv[0], c->argv);
        dprintf(STDERR_FILENO, "{\"msg\":\"ward: cannot run %s: %s\"}\n", c->argv[0],
                strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides: no race with a signal sent at once */
    close(p[1]);
    if (c->out >= 0)
        close(c->out);
    c->out = p[0];
    (void)fcntl(c->out, F_SETFL, O_NONBLOCK);
    c->pid = pid;
    c->line_len = 0;
    c->port = 0;
    c->admin_port = 0;
    c->started_at = cli_now();
    c->next_probe = c->started_at;
    c->state = CLI_STARTING;
    return true;
}

void cli_child_signal(struct cli_child *c, int sig)
{
    if (c->pid > 0)
        (void)kill(-c->pid, sig);
}

/* A "listening" line (every ward daemon logs one with its port) or the gateway's "admin
 * listening". */
static void read_ports(struct cli_child *c, const char *line)
{
    bool admin = strstr(line, "\"msg\":\"admin listening\"") != NULL;
    if (!admin && strstr(line, "\"msg\":\"listening\"") == NULL)
        return;
    json_t *j = json_loads(line, 0, NULL);
    json_int_t port = json_integer_value(json_object_get(j, "port"));
    if (port > 0 && port < 65536) {
        if (admin)
            c->admin_port = (uint16_t)port;
        else
            c->port = (uint16_t)port;
    }
    json_decref(j);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* a terminal gone or a full disk: the line is lost, the stack goes on */
        p += w;
        n -= (size_t)w;
    }
}

static void emit(struct cli_child *c, const char *line, size_t n)
{
    char prefix[CLI_NAME_MAX + 4];
    int k = snprintf(prefix, sizeof prefix, "%-20s| ", c->label);
    char buf[sizeof c->line + sizeof prefix + 2];
    memcpy(buf, prefix, (size_t)k);
    memcpy(buf + k, line, n);
    buf[(size_t)k + n] = '\n';
    write_all(STDOUT_FILENO, buf, (size_t)k + n + 1);
    if (c->log_fd >= 0)
        write_all(c->log_fd, line, n), write_all(c->log_fd, "\n", 1);
}

bool cli_child_relay(struct cli_child *c)
{
    for (;;) {
        size_t room = sizeof c->line - 1 - c->line_len;
        ssize_t n = read(c->out, c->line + c->line_len, room);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0) {
            if (c->line_len > 0)
                emit(c, c->line, c->line_len);
            c->line_len = 0;
            return false;
        }
        c->line_len += (size_t)n;
        char *start = c->line, *nl;
        while ((nl = memchr(start, '\n', c->line_len - (size_t)(start - c->line))) != NULL) {
            *nl = '\0';
            read_ports(c, start);
            emit(c, start, (size_t)(nl - start));
            start = nl + 1;
        }
        size_t rest = c->line_len - (size_t)(start - c->line);
        if (rest == sizeof c->line - 1) { /* a line longer than the buffer: cut */
            emit(c, c->line, rest);
            rest = 0;
        }
        memmove(c->line, start, rest);
        c->line_len = rest;
    }
}

bool cli_child_ready(struct cli_child *c, struct ward_httpc *http)
{
    if (c->port == 0)
        return false;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/ready", (unsigned)c->port);
    struct ward_http_result res;
    enum ward_err err = ward_httpc_do(
        http, &(struct ward_http_call){.url = url, .deadline = cli_now() + 500 * WARD_NS_PER_MS},
        &res);
    bool ok = err == WARD_ERR_OK && res.status == 200;
    ward_http_result_fini(&res);
    return ok;
}
