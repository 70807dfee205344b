/* pg_harness.c — see pg_harness.h. initdb once per process into a template, then per server
 * a copy of it and a postmaster that is our child (its log in the server's directory). */
#include "pg_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PG_BIN_DEFAULT "/usr/lib/postgresql/15/bin"
#define READY_TIMEOUT_MS 20000
#define STOP_TIMEOUT_MS 10000
#define PORT_ATTEMPTS 5
#define DB_NAME "ward_test"

struct pg_server {
    char *dir;  /* mkdtemp'ed: data/, the socket, server.log */
    char *data; /* dir/data */
    char *log;  /* dir/server.log */
    char url[96];
    uint16_t port;
    pid_t pid;   /* the postmaster; 0 when not running */
    bool killed; /* SIGKILLed and not restarted: its SysV segment is ours to remove */
    struct pg_server *next_live;
};

/* Who runs the server: resolved on first use (root runs it as `postgres`). */
static struct {
    bool resolved, as_other;
    uid_t uid;
    gid_t gid;
    char bin[512];
} who;

static char *template_dir;   /* the initdb'ed template (template_dir/data) */
static bool template_shared; /* one of the Criterion run's, not this process's own */
static struct pg_server *live;
static bool hook_registered;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool resolve_who(void)
{
    if (who.resolved)
        return true;
    const char *bin = getenv("WARD_PG_BIN");
    snprintf(who.bin, sizeof who.bin, "%s", bin != NULL && *bin != '\0' ? bin : PG_BIN_DEFAULT);
    who.uid = geteuid();
    who.gid = getegid();
    if (who.uid == 0) {
        /* initdb and postgres refuse to run as root */
        struct passwd *pw = getpwnam("postgres");
        if (pw == NULL) {
            fprintf(stderr, "pg_harness: running as root and there is no postgres user\n");
            return false;
        }
        who.uid = pw->pw_uid;
        who.gid = pw->pw_gid;
        who.as_other = true;
    }
    who.resolved = true;
    return true;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    if (path != NULL)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR owned by the server's user; NULL on failure. */
static char *make_dir(const char *what)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL;
    if (asprintf(&dir, "%s/ward-%s-XXXXXX", tmp != NULL && *tmp != '\0' ? tmp : "/tmp",
                 what) < 0)
        return NULL;
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "pg_harness: mkdtemp %s: %s\n", dir, strerror(errno));
        goto fail;
    }
    if (who.as_other && chown(dir, who.uid, who.gid) != 0) {
        fprintf(stderr, "pg_harness: chown %s: %s\n", dir, strerror(errno));
        rm_rf(dir);
        goto fail;
    }
    return dir;
fail:
    free(dir);
    return NULL;
}

/* Forks argv[0] as the server's user with stdout and stderr appended to log_path; the child
 * dies with the calling thread. Returns the pid, or -1. Only async-signal-safe calls
 * between fork and exec: the test may have threads. */
static pid_t spawn(const char *const argv[], const char *log_path)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = -1;
    if (fd < 0 || null < 0) {
        fprintf(stderr, "pg_harness: open %s: %s\n", log_path, strerror(errno));
        goto out;
    }
    if (who.as_other && fchown(fd, who.uid, who.gid) != 0) {
        fprintf(stderr, "pg_harness: fchown %s: %s\n", log_path, strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "pg_harness: fork: %s\n", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        if (dup2(null, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        /* the test runner's pipes and sockets are none of the server's business */
        close_range(3, ~0U, 0);
        if (who.as_other && (setgroups(1, &who.gid) != 0 || setgid(who.gid) != 0 ||
                             setuid(who.uid) != 0))
            _exit(126);
        /* after setuid: a change of credentials clears the parent-death signal */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
out:
    if (fd >= 0)
        close(fd);
    if (null >= 0)
        close(null);
    return pid;
}

/* waitpid that retries on EINTR; timeout_ms < 0 waits forever, 0 polls. Returns the wait
 * status, or -1 while the child runs (or on error). */
static int reap(pid_t pid, int timeout_ms)
{
    int64_t limit = now_ms() + timeout_ms;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            return -1;
        if (r == 0) {
            if (now_ms() >= limit)
                return -1;
            sleep_ms(5);
        }
    }
}

/* Runs argv to completion; true when it exits 0. */
static bool run(const char *const argv[], const char *log_path)
{
    pid_t pid = spawn(argv, log_path);
    if (pid < 0)
        return false;
    int status = reap(pid, -1);
    return status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void dump_file(const char *what, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s (%s) ----\n", what, path);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of %s ----\n", what);
    fclose(f);
}

static bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool hit = false;
    char line[1024];
    while (!hit && fgets(line, sizeof line, f) != NULL)
        hit = strstr(line, needle) != NULL;
    fclose(f);
    return hit;
}

static void stop_leftovers(void);

/* Whether runner, our parent, runs the same binary as we do (a Criterion runner). */
static bool parent_is_runner(pid_t runner)
{
    char self[4096], parent[4096], link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)runner);
    ssize_t a = readlink("/proc/self/exe", self, sizeof self - 1);
    ssize_t b = readlink(link, parent, sizeof parent - 1);
    if (a <= 0 || b <= 0)
        return false;
    self[a] = '\0';
    parent[b] = '\0';
    return strcmp(self, parent) == 0;
}

/* Starts a detached shell that removes dir once runner has exited; false on failure. */
static bool watch_runner(pid_t runner, const char *dir)
{
    char pid[16];
    snprintf(pid, sizeof pid, "%d", (int)runner);
    const char *argv[] = {"/bin/sh", "-c",
                          "while kill -0 \"$1\" 2>/dev/null; do sleep 0.2; done; rm -rf \"$2\"",
                          "ward-pg-template-watch", pid, dir, NULL};
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return false;
    pid_t child = fork();
    if (child == 0) {
        /* its own session, no inherited fds: the runner must not wait for it */
        if (setsid() < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
            _exit(126);
        close_range(3, ~0U, 0);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    close(null);
    return child > 0;
}

static bool initdb(const char *dir, const char *data);

/* Under Criterion every test runs in a process of its own that the runner re-executes
 * (BoxFort sets BXFI_MAP): they share one template named after the runner, made by the
 * first of them, and a watcher removes it when the runner exits. NULL when not under
 * Criterion or when the shared template cannot be had (then each process makes its own). */
static char *shared_template(void)
{
    pid_t runner = getppid();
    if (getenv("BXFI_MAP") == NULL || !parent_is_runner(runner))
        return NULL;
    const char *tmp = getenv("TMPDIR");
    char *dir = NULL, *data = NULL, *failed = NULL, *staging = NULL;
    if (asprintf(&dir, "%s/ward-pgtmpl-%u-%d", tmp != NULL && *tmp != '\0' ? tmp : "/tmp",
                 (unsigned)geteuid(), (int)runner) < 0)
        return NULL;
    if (asprintf(&data, "%s/data", dir) < 0 || asprintf(&failed, "%s/failed", dir) < 0 ||
        asprintf(&staging, "%s/staging", dir) < 0)
        goto fail;
    if (mkdir(dir, 0700) == 0) {
        if ((who.as_other && chown(dir, who.uid, who.gid) != 0) || !watch_runner(runner, dir)) {
            rm_rf(dir);
            goto fail;
        }
        /* initdb into staging, then rename: the others wait for data to appear */
        if (!initdb(dir, staging) || rename(staging, data) != 0) {
            FILE *f = fopen(failed, "w");
            if (f != NULL)
                fclose(f);
            goto fail;
        }
    } else if (errno == EEXIST) {
        struct stat st;
        if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != who.uid)
            goto fail;
        int64_t limit = now_ms() + 60000;
        while (access(data, F_OK) != 0) {
            if (access(failed, F_OK) == 0 || now_ms() >= limit)
                goto fail;
            sleep_ms(20);
        }
    } else {
        goto fail;
    }
    free(data);
    free(failed);
    free(staging);
    return dir;
fail:
    free(dir);
    free(data);
    free(failed);
    free(staging);
    return NULL;
}

/* initdb into data (which must not exist yet) with its log in dir. */
static bool initdb(const char *dir, const char *data)
{
    char *log = NULL, *bin = NULL;
    bool ok = false;
    if (asprintf(&log, "%s/initdb.log", dir) < 0 || asprintf(&bin, "%s/initdb", who.bin) < 0)
        goto out;
    /* -N: no fsync of the files, the template is copied and thrown away */
    const char *argv[] = {bin, "-D", data, "-N", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                          "--locale=C", NULL};
    ok = run(argv, log);
    if (!ok) {
        fprintf(stderr, "pg_harness: %s failed\n", bin);
        dump_file("initdb log", log);
    }
    remove(log);
out:
    free(log);
    free(bin);
    return ok;
}

/* The template, once per process (or once per Criterion run). */
static bool ensure_template(void)
{
    if (template_dir != NULL)
        return true;
    if (!hook_registered && atexit(stop_leftovers) != 0)
        return false;
    hook_registered = true;
    template_dir = shared_template();
    if (template_dir != NULL) {
        template_shared = true;
        return true;
    }
    char *dir = make_dir("pgtmpl");
    char *data = NULL;
    bool ok = false;
    if (dir == NULL)
        goto out;
    if (asprintf(&data, "%s/data", dir) < 0 || !initdb(dir, data))
        goto out;
    template_dir = dir;
    dir = NULL;
    ok = true;
out:
    rm_rf(dir);
    free(dir);
    free(data);
    return ok;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* The SysV segment id recorded in postmaster.pid (line 7: "key id"), or -1. */
static int shm_id(const struct pg_server *p)
{
    char *path = NULL;
    if (asprintf(&path, "%s/postmaster.pid", p->data) < 0)
        return -1;
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL)
        return -1;
    char line[256];
    int id = -1;
    for (int i = 1; fgets(line, sizeof line, f) != NULL; i++) {
        long key, sid;
        if (i == 7 && sscanf(line, "%ld %ld", &key, &sid) == 2)
            id = (int)sid;
    }
    fclose(f);
    return id;
}

/* Waits until the segment has no process attached: the killed postmaster's backends have
 * noticed its death and exited (a new postmaster refuses to start before that). */
static void await_detached(int id)
{
    struct shmid_ds ds;
    for (int64_t limit = now_ms() + 5000; id >= 0 && now_ms() < limit; sleep_ms(5))
        if (shmctl(id, IPC_STAT, &ds) != 0 || ds.shm_nattch == 0)
            return;
    fprintf(stderr, "pg_harness: backends still attached to segment %d after 5 s\n", id);
}

/* Starts the postmaster and waits for it to accept connections: 1 ready, 0 the port was
 * taken, -1 another failure (the log printed). */
static int launch(struct pg_server *p)
{
    char port[16], *postgres = NULL;
    int rc = -1;
    snprintf(port, sizeof port, "%u", (unsigned)p->port);
    if (asprintf(&postgres, "%s/postgres", who.bin) < 0)
        return -1;
    const char *argv[] = {postgres, "-D", p->data, "-p", port, "-k", p->dir, "-h", "127.0.0.1",
                    "-c", "fsync=off", "-c", "full_page_writes=off",
                    "-c", "autovacuum=off",
                    "-c", "max_connections=50", "-c", "shared_buffers=16MB",
                    "-c", "max_wal_size=1GB", "-c", "checkpoint_timeout=1h",
                    "-c", "log_checkpoints=off", "-c", "logging_collector=off",
                    /* files in the data dir: nothing in /dev/shm outlives a SIGKILL */
                    "-c", "dynamic_shared_memory_type=mmap",
                    NULL};
    char conninfo[160];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%u user=postgres dbname=postgres connect_timeout=2",
             (unsigned)p->port);
    p->pid = spawn(argv, p->log);
    if (p->pid < 0) {
        p->pid = 0;
        goto out;
    }
    for (int64_t limit = now_ms() + READY_TIMEOUT_MS;; sleep_ms(10)) {
        int status = reap(p->pid, 0);
        if (status >= 0) {
            p->pid = 0;
            if (file_has(p->log, "Address already in use")) {
                rc = 0;
                goto out;
            }
            fprintf(stderr, "pg_harness: postgres exited (status 0x%x)\n", (unsigned)status);
            dump_file("postgres log", p->log);
            goto out;
        }
        if (PQping(conninfo) == PQPING_OK)
            break;
        if (now_ms() >= limit) {
            fprintf(stderr, "pg_harness: postgres not ready after %d ms\n", READY_TIMEOUT_MS);
            dump_file("postgres log", p->log);
            kill(p->pid, SIGKILL);
            reap(p->pid, -1);
            p->pid = 0;
            goto out;
        }
    }
    p->killed = false;
    rc = 1;
out:
    free(postgres);
    return rc;
}

/* Runs sql on a new connection; dbname NULL means ward_test. */
static bool exec_on(const struct pg_server *p, const char *dbname, const char *sql)
{
    char conninfo[160];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%u user=postgres dbname=%s connect_timeout=5",
             (unsigned)p->port, dbname != NULL ? dbname : DB_NAME);
    PGconn *c = PQconnectdb(conninfo);
    PGresult *res = NULL;
    bool ok = false;
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "pg_harness: connect to %s: %s", conninfo,
                c != NULL ? PQerrorMessage(c) : "out of memory\n");
        goto out;
    }
    res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "pg_harness: %s: %s", sql, PQerrorMessage(c));
out:
    PQclear(res);
    PQfinish(c);
    return ok;
}

static void server_free(struct pg_server *p)
{
    for (struct pg_server **pp = &live; *pp != NULL; pp = &(*pp)->next_live) {
        if (*pp == p) {
            *pp = p->next_live;
            break;
        }
    }
    if (p->pid > 0) {
        kill(p->pid, SIGINT); /* fast shutdown */
        if (reap(p->pid, STOP_TIMEOUT_MS) < 0) {
            fprintf(stderr, "pg_harness: postgres did not stop in %d ms; killing it\n",
                    STOP_TIMEOUT_MS);
            pg_kill(p);
        }
        p->pid = 0;
    }
    if (p->killed) {
        /* a crashed postmaster leaves its interlock segment; nobody would remove it */
        int id = shm_id(p);
        await_detached(id);
        if (id >= 0)
            shmctl(id, IPC_RMID, NULL);
    }
    rm_rf(p->dir);
    free(p->dir);
    free(p->data);
    free(p->log);
    free(p);
}

static void stop_leftovers(void)
{
    while (live != NULL)
        server_free(live);
    if (!template_shared)
        rm_rf(template_dir);
    free(template_dir);
    template_dir = NULL;
}

struct pg_server *pg_start(void)
{
    if (!resolve_who() || !ensure_template())
        return NULL;
    struct pg_server *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->next_live = live;
    live = p;
    char *src = NULL;
    const char *cp = "/bin/cp";
    p->dir = make_dir("pg");
    if (p->dir == NULL)
        goto fail;
    if (asprintf(&p->data, "%s/data", p->dir) < 0 ||
        asprintf(&p->log, "%s/server.log", p->dir) < 0 ||
        asprintf(&src, "%s/data", template_dir) < 0)
        goto fail;
    const char *argv[] = {cp, "-a", src, p->data, NULL};
    if (!run(argv, p->log)) {
        fprintf(stderr, "pg_harness: copying the template %s failed\n", src);
        dump_file("cp output", p->log);
        goto fail;
    }
    int rc = 0;
    for (int attempt = 0; rc == 0 && attempt < PORT_ATTEMPTS; attempt++) {
        p->port = free_port();
        if (p->port == 0) {
            fprintf(stderr, "pg_harness: no free port: %s\n", strerror(errno));
            goto fail;
        }
        rc = launch(p);
    }
    if (rc != 1) {
        if (rc == 0)
            fprintf(stderr, "pg_harness: every port tried was taken\n");
        goto fail;
    }
    snprintf(p->url, sizeof p->url, "postgresql://postgres@127.0.0.1:%u/" DB_NAME,
             (unsigned)p->port);
    if (!exec_on(p, "postgres", "CREATE DATABASE " DB_NAME))
        goto fail;
    free(src);
    return p;
fail:
    free(src);
    server_free(p);
    return NULL;
}

const char *pg_url(const struct pg_server *p)
{
    return p->url;
}

uint16_t pg_port(const struct pg_server *p)
{
    return p->port;
}

void pg_kill(struct pg_server *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGKILL);
    reap(p->pid, -1);
    p->pid = 0;
    p->killed = true;
    await_detached(shm_id(p));
}

bool pg_restart(struct pg_server *p)
{
    if (p->pid > 0)
        return true;
    int rc = launch(p);
    if (rc == 0)
        fprintf(stderr, "pg_harness: port %u was taken while the server was down\n",
                (unsigned)p->port);
    return rc == 1;
}

void pg_stop(struct pg_server *p)
{
    if (p != NULL)
        server_free(p);
}

bool pg_exec(struct pg_server *p, const char *sql)
{
    return exec_on(p, NULL, sql);
}
