/* harness.c — see harness.h. Processes run in their own process group, so that stopping
 * one never leaves a child behind. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ward/fault.h>

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *bin_path(const char *binary)
{
    const char *dir = getenv("WARD_BIN_DIR");
    cr_assert(dir != NULL, "WARD_BIN_DIR is not set (ctest sets it)");
    char *path = NULL;
    cr_assert(asprintf(&path, "%s/%s", dir, binary) > 0);
    return path;
}

static void *reader(void *arg)
{
    struct h_proc *p = arg;
    char buf[4096];
    for (;;) {
        ssize_t n = read(p->err_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        pthread_mutex_lock(&p->lock);
        if (n <= 0) {
            p->eof = true;
            pthread_cond_broadcast(&p->cond);
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        if (p->log_len + (size_t)n + 1 > p->log_cap) {
            size_t cap = p->log_cap ? p->log_cap : 65536;
            while (cap < p->log_len + (size_t)n + 1)
                cap *= 2;
            p->log = realloc(p->log, cap);
            p->log_cap = cap;
        }
        memcpy(p->log + p->log_len, buf, (size_t)n);
        p->log_len += (size_t)n;
        p->log[p->log_len] = '\0';
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
}

static pid_t spawn(const char *path, const char *const *argv, int out_fd, int err_fd)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        setpgid(0, 0);
        /* if the test dies (a failed assertion ends it at once), the daemon goes too */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(out_fd >= 0 ? out_fd : devnull, 1);
        dup2(err_fd, 2);
        execv(path, (char *const *)(uintptr_t)argv);
        fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    return pid;
}

struct h_proc *h_spawn(const char *path, const char *const *argv)
{
    struct h_proc *p = calloc(1, sizeof *p);
    cr_assert(p != NULL);
    p->status = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    int fds[2];
    cr_assert(pipe2(fds, O_CLOEXEC) == 0);
    p->pid = spawn(path, argv, -1, fds[1]);
    close(fds[1]);
    p->err_fd = fds[0];
    pthread_create(&p->reader, NULL, reader, p);
    return p;
}

struct h_proc *h_start(const char *binary, const char *const *args)
{
    char *path = bin_path(binary);
    const char *argv[64] = {path, "--listen", "127.0.0.1:0"};
    size_t n = 3;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    struct h_proc *p = h_spawn(path, argv);
    free(path);

    json_t *line = h_log_wait(p, "\"msg\":\"listening\"", 10000);
    if (line == NULL) {
        h_log_dump(p);
        kill(-p->pid, SIGKILL);
        cr_assert_fail("%s did not start listening", binary);
    }
    p->port = (uint16_t)json_integer_value(json_object_get(line, "port"));
    json_decref(line);
    cr_assert(p->port != 0);
    for (int64_t limit = now_ms() + 10000; now_ms() < limit; h_sleep_ms(10)) {
        struct h_resp r;
        if (h_http(p->port, "GET", "/ready", NULL, NULL, 0, &r)) {
            long st = r.status;
            h_resp_free(&r);
            if (st == 200)
                return p;
        }
    }
    h_log_dump(p);
    kill(-p->pid, SIGKILL);
    cr_assert_fail("%s never became ready", binary);
    return NULL;
}

int h_run(const char *binary, const char *const *args, char **out, char **err)
{
    char *path = bin_path(binary);
    const char *argv[64] = {path};
    size_t n = 1;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    FILE *fo = tmpfile(), *fe = tmpfile();
    cr_assert(fo != NULL && fe != NULL);
    pid_t pid = spawn(path, argv, fileno(fo), fileno(fe));
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    free(path);
    FILE *fs[2] = {fo, fe};
    char **dst[2] = {out, err};
    for (int i = 0; i < 2; i++) {
        long len = ftell(fs[i]);
        rewind(fs[i]);
        char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
        if (len > 0 && fread(text, 1, (size_t)len, fs[i]) != (size_t)len)
            text[0] = '\0';
        fclose(fs[i]);
        if (dst[i] != NULL)
            *dst[i] = text;
        else
            free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void h_signal(struct h_proc *p, int sig)
{
    kill(p->pid, sig);
}

int h_wait(struct h_proc *p, int timeout_ms)
{
    int64_t limit = now_ms() + timeout_ms;
    while (!p->reaped) {
        int st = 0;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->reaped = true;
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        if (now_ms() >= limit)
            return -1;
        h_sleep_ms(5);
    }
    return p->status;
}

int h_stop(struct h_proc *p, int timeout_ms)
{
    h_signal(p, SIGTERM);
    int st = h_wait(p, timeout_ms);
    if (st < 0) {
        kill(-p->pid, SIGKILL);
        h_wait(p, 5000);
    }
    return st;
}

void h_free(struct h_proc *p)
{
    if (p == NULL)
        return;
    if (!p->reaped) {
        kill(-p->pid, SIGKILL);
        h_wait(p, 5000);
    }
    kill(-p->pid, SIGKILL); /* anything it left in its group */
    pthread_join(p->reader, NULL);
    close(p->err_fd);
    /* a crash test's fault (_exit(WARD_FAULT_EXIT_STATUS)) is expected: the test checks it */
    if (p->status != 0 && p->status != -1 && p->status != WARD_FAULT_EXIT_STATUS &&
        getenv("WARD_TEST_QUIET") == NULL)
        h_log_dump(p);
    free(p->log);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

char *h_line_wait(struct h_proc *p, const char *needle, int timeout_ms)
{
    int64_t limit = now_ms() + timeout_ms;
    char *found = NULL;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        const char *hit = p->log != NULL ? strstr(p->log, needle) : NULL;
        if (hit != NULL) {
            const char *start = hit;
            while (start > p->log && start[-1] != '\n')
                start--;
            const char *end = strchr(hit, '\n');
            if (end != NULL) {
                found = strndup(start, (size_t)(end - start));
                break;
            }
        }
        if (p->eof || now_ms() >= limit)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
    return found;
}

json_t *h_log_wait(struct h_proc *p, const char *needle, int timeout_ms)
{
    char *line = h_line_wait(p, needle, timeout_ms);
    json_t *found = line != NULL ? json_loads(line, 0, NULL) : NULL;
    free(line);
    return found;
}

void h_log_dump(struct h_proc *p)
{
    pthread_mutex_lock(&p->lock);
    fprintf(stderr, "---- log of pid %d ----\n%s\n---- end ----\n", (int)p->pid, p->log ? p->log : "");
    pthread_mutex_unlock(&p->lock);
}

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct buf *b = arg;
    size_t n = size * nmemb;
    char *grown = realloc(b->data, b->len + n + 1);
    if (grown == NULL)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

bool h_http(uint16_t port, const char *method, const char *path, const char *const *headers,
            const char *body, size_t body_len, struct h_resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    cr_assert(c != NULL);
    char url[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    struct buf b = {0}, h = {0};
    struct curl_slist *list = NULL;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
        list = curl_slist_append(list, headers[i]);
    list = curl_slist_append(list, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
    r->body = b.data ? b.data : calloc(1, 1);
    r->len = b.len;
    r->headers = h.data ? h.data : calloc(1, 1);
    if (r->len > 0)
        r->json = json_loadb(r->body, r->len, 0, NULL);
    return rc == CURLE_OK;
}

void h_resp_free(struct h_resp *r)
{
    free(r->body);
    free(r->headers);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

char *h_resp_header(const struct h_resp *r, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            return strndup(v, (size_t)(end - v));
        }
        line = end + 2;
    }
    return NULL;
}

int h_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool h_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        s += w;
        n -= (size_t)w;
    }
    return true;
}

int h_read_response(int fd, int timeout_ms, char **body)
{
    char buf[65536];
    size_t len = 0;
    int64_t limit = now_ms() + timeout_ms;
    int status = -1;
    while (len < sizeof buf - 1) {
        int left = (int)(limit - now_ms());
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (end != NULL && cl != NULL && cl < end &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10))
            break;
    }
    buf[len] = '\0';
    if (len > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        status = atoi(buf + 9);
    if (body != NULL) {
        const char *end = strstr(buf, "\r\n\r\n");
        *body = strdup(end != NULL ? end + 4 : "");
    }
    return status;
}
