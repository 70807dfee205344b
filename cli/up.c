/* up.c — `ward up`: the whole local stack, supervised. Tier by tier (the registry; then
 * zakat, invoice and accounting; then payment, which calls the two before it; then the
 * gateway), each child started when the tier before it answers /ready; a child that dies
 * is started again after a backoff (0.5 s doubling to 10 s, reset once it ran a minute),
 * on the same port; Ctrl-C or SIGTERM stops the tiers in reverse order, each gracefully
 * (SIGTERM, SIGKILL after --stop-timeout). A control socket in the data directory takes
 * `ward status`, `ward stop` and `ward start`. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ward/config.h>
#include <ward/httpc.h>

#include "cli.h"
#include "up.h"

#define MS WARD_NS_PER_MS

/* ---- the stack's children ------------------------------------------------------------- */

struct service_def {
    const char *name;
    int tier;
    uint16_t port; /* the default of DESIGN.md §1 */
    bool db;
};

static const struct service_def services[] = {
    {"zakat-service", 1, 8081, false},
    {"invoice-service", 1, 8082, true},
    {"accounting-service", 1, 8083, true},
    {"payment-service", 2, 8084, true},
};

/* How many instances --instances asks of name (1 unless said). */
static int instances_of(const struct up *u, const char *name)
{
    const char *p = u->instances;
    size_t n = strlen(name);
    while (p != NULL && *p != '\0') {
        if (strncmp(p, name, n) == 0 && p[n] == '=')
            return atoi(p + n + 1);
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    return 1;
}

/* --instances is NAME=N[,NAME=N...] with known names and 1 <= N <= 16. */
static bool instances_valid(const char *spec)
{
    const char *p = spec;
    while (p != NULL && *p != '\0') {
        bool known = false;
        for (size_t i = 0; i < sizeof services / sizeof services[0]; i++) {
            size_t n = strlen(services[i].name);
            if (strncmp(p, services[i].name, n) == 0 && p[n] == '=') {
                char *end = NULL;
                long v = strtol(p + n + 1, &end, 10);
                known = v >= 1 && v <= 16 && (*end == ',' || *end == '\0');
            }
        }
        if (!known)
            return false;
        p = strchr(p, ',');
        p = p != NULL ? p + 1 : NULL;
    }
    return true;
}

static struct cli_child *add_child(struct up *u, const char *name, int tier, int instance,
                                   uint16_t port)
{
    if (u->n == CLI_MAX_CHILDREN)
        return NULL;
    struct cli_child *c = &u->kids[u->n++];
    memset(c, 0, sizeof *c);
    c->out = c->log_fd = -1;
    c->tier = tier;
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->binary, sizeof c->binary, "%s", name);
    if (instance > 0)
        snprintf(c->label, sizeof c->label, "%s#%d", name, instance + 1);
    else
        snprintf(c->label, sizeof c->label, "%s", name);
    c->port = u->free_ports || instance > 0 ? 0 : port;
    c->state = CLI_WAITING;
    return c;
}

/* The children, in tier order. */
static bool plan(struct up *u)
{
    if (u->registry_url == NULL && add_child(u, "ward-registry", 0, 0, 8500) == NULL)
        return false;
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        for (int k = 0; k < instances_of(u, services[i].name); k++)
            if (add_child(u, services[i].name, services[i].tier, k, services[i].port) == NULL)
                return false;
    struct cli_child *gw = add_child(u, "ward-gateway", 3, 0, 8080);
    if (gw == NULL)
        return false;
    gw->admin_port = u->free_ports ? 0 : 9901;
    return true;
}

static bool has_db(const char *name)
{
    for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
        if (strcmp(services[i].name, name) == 0)
            return services[i].db;
    return false;
}

/* c's command line, anew at every start: the port it had (so that a restart keeps its
 * address), the registry's URL as it is now. */
static bool arguments(struct up *u, struct cli_child *c)
{
    for (size_t i = 0; i < c->argc; i++)
        free(c->argv[i]);
    c->argc = 0;
    char buf[PATH_MAX + 64];
    snprintf(buf, sizeof buf, "%s/%s", u->bin_dir, c->binary);
    bool ok = cli_child_arg(c, buf);
    snprintf(buf, sizeof buf, "127.0.0.1:%u", (unsigned)c->port);
    ok = ok && cli_child_arg(c, "--listen") && cli_child_arg(c, buf);
    if (strcmp(c->name, "ward-registry") == 0)
        return ok;
    ok = ok && cli_child_arg(c, "--registry") && cli_child_arg(c, u->reg_url);
    if (strcmp(c->name, "ward-gateway") == 0) {
        snprintf(buf, sizeof buf, "127.0.0.1:%u", (unsigned)c->admin_port);
        ok = ok && cli_child_arg(c, "--admin-listen") && cli_child_arg(c, buf);
        if (u->gateway_config != NULL)
            ok = ok && cli_child_arg(c, "--config") && cli_child_arg(c, u->gateway_config);
        return ok;
    }
    if (has_db(c->name)) {
        if (u->db_url != NULL)
            snprintf(buf, sizeof buf, "%s", u->db_url);
        else
            snprintf(buf, sizeof buf, "sqlite://%s/%s.db", u->data_dir, c->name);
        ok = ok && cli_child_arg(c, "--db") && cli_child_arg(c, buf);
    }
    return ok;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%-20s| %s\n", "ward", buf);
    fflush(stdout);
}

static void start(struct up *u, struct cli_child *c)
{
    if (!arguments(u, c)) {
        say("%s: out of memory", c->label);
        c->state = CLI_STOPPED;
        return;
    }
    if (c->log_fd < 0) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/logs/%s.log", u->data_dir, c->label);
        c->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    if (!cli_child_spawn(c)) {
        c->state = CLI_BACKOFF;
        c->restart_at = cli_now() + 1000 * MS;
    }
}

/* ---- the loop's steps ----------------------------------------------------------------- */

/* A child ended: the end asked for, or a crash to restart from after a backoff. */
static void reaped(struct up *u, struct cli_child *c, int status)
{
    int64_t now = cli_now();
    c->pid = 0;
    c->exit_status = status;
    if (c->state == CLI_STOPPING || u->shutting_down || c->held) {
        c->state = CLI_STOPPED;
        return;
    }
    if (now - c->started_at > 60 * WARD_NS_PER_S)
        c->restarts = 0;
    int64_t backoff = 500 * MS << (c->restarts < 5 ? c->restarts : 5);
    if (backoff > 10 * WARD_NS_PER_S)
        backoff = 10 * WARD_NS_PER_S;
    c->restarts++;
    c->state = CLI_BACKOFF;
    c->restart_at = now + backoff;
    if (WIFSIGNALED(status))
        say("%s died of signal %d; starting it again in %lld ms", c->label, WTERMSIG(status),
            (long long)(backoff / MS));
    else
        say("%s exited with status %d; starting it again in %lld ms", c->label,
            WEXITSTATUS(status), (long long)(backoff / MS));
}

static void reap_all(struct up *u)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        for (size_t i = 0; i < u->n; i++)
            if (u->kids[i].pid == pid)
                reaped(u, &u->kids[i], status);
}

static bool tier_ready(const struct up *u, int tier)
{
    for (size_t i = 0; i < u->n; i++) {
        const struct cli_child *c = &u->kids[i];
        if (c->tier <= tier && c->state != CLI_READY && !c->held)
            return false;
    }
    return true;
}

static void announce(struct up *u)
{
    say("the stack is up (data in %s; Ctrl-C stops it)", u->data_dir);
    for (size_t i = 0; i < u->n; i++) {
        struct cli_child *c = &u->kids[i];
        if (strcmp(c->name, "ward-gateway") == 0)
            say("  %-22s http://127.0.0.1:%u  (admin http://127.0.0.1:%u)", c->label,
                (unsigned)c->port, (unsigned)c->admin_port);
        else
            say("  %-22s http://127.0.0.1:%u", c->label, (unsigned)c->port);
    }
}

/* Starts what is due, probes what is starting, kills what overstayed its stop. */
static void advance(struct up *u)
{
    int64_t now = cli_now();
    for (size_t i = 0; i < u->n; i++) {
        struct cli_child *c = &u->kids[i];
        if (c->state == CLI_STARTING && now >= c->next_probe) {
            if (cli_child_ready(c, u->http)) {
                c->state = CLI_READY;
                say("%s ready on 127.0.0.1:%u", c->label, (unsigned)c->port);
                if (strcmp(c->name, "ward-registry") == 0)
                    snprintf(u->reg_url, sizeof u->reg_url, "consul://127.0.0.1:%u",
                             (unsigned)c->port);
            } else {
                c->next_probe = cli_now() + 100 * MS;
            }
        }
        if (c->state == CLI_STOPPING && now >= c->stop_deadline) {
            say("%s did not stop within %lld s: killed", c->label,
                (long long)(u->stop_timeout / WARD_NS_PER_S));
            cli_child_signal(c, SIGKILL);
            c->stop_deadline = INT64_MAX;
        }
        if (!u->shutting_down && c->state == CLI_BACKOFF && !c->held && now >= c->restart_at)
            start(u, c);
    }
    if (u->shutting_down)
        return;
    for (size_t i = 0; i < u->n; i++) {
        struct cli_child *c = &u->kids[i];
        if (c->state == CLI_WAITING && (c->tier == 0 || tier_ready(u, c->tier - 1)))
            start(u, c);
    }
    if (!u->announced && tier_ready(u, 3)) {
        u->announced = true;
        announce(u);
    }
}

/* The graceful end, tier by tier from the top; true once every child is gone. */
static bool wind_down(struct up *u)
{
    for (int tier = 3; tier >= 0; tier--) {
        bool running = false;
        for (size_t i = 0; i < u->n; i++) {
            struct cli_child *c = &u->kids[i];
            if (c->tier != tier || c->pid == 0)
                continue;
            running = true;
            if (c->state != CLI_STOPPING) {
                c->state = CLI_STOPPING;
                c->stop_deadline = cli_now() + u->stop_timeout;
                cli_child_signal(c, SIGTERM);
            }
        }
        if (running)
            return false;
    }
    return true;
}

void up_stop_child(struct up *u, struct cli_child *c)
{
    c->held = true;
    if (c->pid > 0 && c->state != CLI_STOPPING) {
        c->state = CLI_STOPPING;
        c->stop_deadline = cli_now() + u->stop_timeout;
        cli_child_signal(c, SIGTERM);
    } else if (c->pid == 0) {
        c->state = CLI_STOPPED;
    }
}

void up_start_child(struct up *u, struct cli_child *c)
{
    c->held = false;
    c->restarts = 0;
    if (c->pid == 0 && !u->shutting_down)
        start(u, c);
}

/* ---- the loop -------------------------------------------------------------------------- */

static int64_t next_wake(const struct up *u)
{
    int64_t wake = cli_now() + 1000 * MS;
    for (size_t i = 0; i < u->n; i++) {
        const struct cli_child *c = &u->kids[i];
        if (c->state == CLI_STARTING && c->next_probe < wake)
            wake = c->next_probe;
        if (c->state == CLI_BACKOFF && c->restart_at < wake)
            wake = c->restart_at;
        if (c->state == CLI_STOPPING && c->stop_deadline < wake)
            wake = c->stop_deadline;
    }
    return wake;
}

static int serve(struct up *u, int sigfd)
{
    struct pollfd pfd[2 + CLI_MAX_CHILDREN];
    struct cli_child *who[2 + CLI_MAX_CHILDREN];
    for (;;) {
        advance(u);
        if (u->shutting_down && wind_down(u))
            break;
        size_t n = 0;
        pfd[n++] = (struct pollfd){.fd = sigfd, .events = POLLIN};
        pfd[n++] = (struct pollfd){.fd = u->ctl_fd, .events = POLLIN};
        for (size_t i = 0; i < u->n; i++)
            if (u->kids[i].out >= 0) {
                who[n] = &u->kids[i];
                pfd[n++] = (struct pollfd){.fd = u->kids[i].out, .events = POLLIN};
            }
        int64_t wait = next_wake(u) - cli_now();
        int rc = poll(pfd, n, wait <= 0 ? 0 : (int)(wait / MS) + 1);
        if (rc < 0 && errno != EINTR)
            break;
        for (size_t i = 2; rc > 0 && i < n; i++)
            if (pfd[i].revents != 0 && !cli_child_relay(who[i])) {
                close(who[i]->out);
                who[i]->out = -1;
            }
        if (rc > 0 && pfd[1].revents != 0)
            up_control_accept(u);
        struct signalfd_siginfo si;
        while (rc > 0 && read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGCHLD)
                continue; /* reaped below */
            if (u->shutting_down) {
                say("second signal: killing everything");
                for (size_t i = 0; i < u->n; i++)
                    cli_child_signal(&u->kids[i], SIGKILL);
                u->forced = true;
            } else {
                say("stopping the stack (%s); a second Ctrl-C kills it", strsignal((int)si.ssi_signo));
                u->shutting_down = true;
            }
        }
        reap_all(u);
    }
    /* what the children still wrote */
    for (size_t i = 0; i < u->n; i++)
        while (u->kids[i].out >= 0 && cli_child_relay(&u->kids[i]))
            ;
    int status = u->forced ? 1 : 0;
    for (size_t i = 0; i < u->n; i++) {
        int st = u->kids[i].exit_status;
        if (u->kids[i].started_at != 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            status = 1;
    }
    say("stopped%s", status == 0 ? "" : " (not every child exited 0)");
    return status;
}

/* The directory this program is in: the other binaries are beside it. */
static bool own_dir(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    return true;
}

int cli_up(int argc, char **argv)
{
    static struct up u;
    memset(&u, 0, sizeof u);
    u.data_dir = "./data";
    u.stop_timeout = 40 * WARD_NS_PER_S;
    u.ctl_fd = -1;
    const struct ward_opt opts[] = {
        {"data-dir", "WARD_DATA", WARD_OPT_STRING, &u.data_dir, "SQLite files, logs and the control socket", 0, 0},
        {"db", "WARD_DB", WARD_OPT_STRING, &u.db_url, "postgresql://... for every service with a database, instead of SQLite files", 0, 0},
        {"registry", "WARD_REGISTRY", WARD_OPT_STRING, &u.registry_url, "an external registry (consul://HOST:PORT or etcd://HOST:PORT[,...]); none: the embedded ward-registry", 0, 0},
        {"instances", "WARD_INSTANCES", WARD_OPT_STRING, &u.instances, "SERVICE=N[,SERVICE=N...]: several instances of a service, on free ports", 0, 0},
        {"gateway-config", "WARD_GATEWAY_CONFIG", WARD_OPT_STRING, &u.gateway_config, "the gateway's routes file (docs/gateway.md); none: its built-in routes", 0, 0},
        {"free-ports", "WARD_FREE_PORTS", WARD_OPT_BOOL, &u.free_ports, "every process on a port the kernel picks, not the defaults (8500, 8080-8084, 9901)", 0, 0},
        {"stop-timeout", "WARD_STOP_TIMEOUT", WARD_OPT_DURATION, &u.stop_timeout, "how long a child gets to stop after SIGTERM before SIGKILL", WARD_NS_PER_S, 3600 * WARD_NS_PER_S},
    };
    int parsed = cli_parse_flags(opts, sizeof opts / sizeof opts[0], argc, argv, "ward up");
    if (parsed >= 0)
        return parsed;
    if (u.registry_url != NULL && u.registry_url[0] == '\0')
        u.registry_url = NULL;
    if (u.instances != NULL && !instances_valid(u.instances)) {
        fprintf(stderr, "ward up: --instances %s: want SERVICE=N[,...] with N from 1 to 16 "
                        "and SERVICE one of zakat-service, invoice-service, "
                        "accounting-service, payment-service\n", u.instances);
        return 2;
    }
    static char data_abs[PATH_MAX], logs[PATH_MAX + 8];
    if (mkdir(u.data_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "ward up: %s: %s\n", u.data_dir, strerror(errno));
        return 1;
    }
    if (realpath(u.data_dir, data_abs) == NULL || !own_dir(u.bin_dir, sizeof u.bin_dir)) {
        fprintf(stderr, "ward up: %s: %s\n", u.data_dir, strerror(errno));
        return 1;
    }
    u.data_dir = data_abs;
    snprintf(logs, sizeof logs, "%s/logs", data_abs);
    (void)mkdir(logs, 0755);
    if (u.registry_url != NULL)
        snprintf(u.reg_url, sizeof u.reg_url, "%s", u.registry_url);
    if (!plan(&u))
        return 1;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int rc = 1;
    if (sigfd < 0 || ward_httpc_new(NULL, &u.http) != WARD_ERR_OK) {
        fprintf(stderr, "ward up: cannot start: %s\n", strerror(errno));
        goto out;
    }
    if (!up_control_open(&u))
        goto out;
    rc = serve(&u, sigfd);
out:
    up_control_close(&u);
    for (size_t i = 0; i < u.n; i++)
        cli_child_fini(&u.kids[i]);
    ward_httpc_free(u.http);
    if (sigfd >= 0)
        close(sigfd);
    return rc;
}
