/* test_etcd_watch.c — the etcd watch stream against a scripted server on a raw socket,
 * so that the bytes can be cut where real networks cut them: a message split across
 * chunks, several messages in one chunk, a DELETE event, a progress notification, a
 * compaction that forces a new range, and a stream that goes silent (the watch must take
 * it for dead after watch_silence and range again). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ward/registry.h>

#include "../../lib/registry/registry_int.h"

#define MS INT64_C(1000000)

static int lfd = -1;
static uint16_t port;
static atomic_int ranges, watches;
static atomic_bool stopping;
static pthread_t acceptor;

/* base64 of an endpoints value for 127.0.0.1:p, and of its key. */
static void kv_json(char *buf, size_t size, uint16_t p)
{
    char key[64], value[96];
    snprintf(key, sizeof key, "services/web/127.0.0.1:%u", (unsigned)p);
    snprintf(value, sizeof value, "{\"Op\":0,\"Addr\":\"127.0.0.1:%u\"}", (unsigned)p);
    char *k = ward__b64_encode(key, strlen(key)), *v = ward__b64_encode(value, strlen(value));
    snprintf(buf, size, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    free(k);
    free(v);
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* One HTTP chunk holding s. */
static void chunk(int fd, const char *s)
{
    char head[32];
    snprintf(head, sizeof head, "%zx\r\n", strlen(s));
    send_all(fd, head, strlen(head));
    send_all(fd, s, strlen(s));
    send_all(fd, "\r\n", 2);
    usleep(20000); /* separate reads on the client's side */
}

/* The answer to the n-th range (1-based): 8001; then 8002 and 8003; then 8003. */
static void answer_range(int fd, int n)
{
    char a[256], b[256], body[700];
    if (n == 1) {
        kv_json(a, sizeof a, 8001);
        snprintf(body, sizeof body, "{\"header\":{\"revision\":\"10\"},\"kvs\":[%s]}", a);
    } else if (n == 2) {
        kv_json(a, sizeof a, 8002);
        kv_json(b, sizeof b, 8003);
        snprintf(body, sizeof body, "{\"header\":{\"revision\":\"20\"},\"kvs\":[%s,%s]}", a, b);
    } else {
        kv_json(a, sizeof a, 8003);
        snprintf(body, sizeof body, "{\"header\":{\"revision\":\"30\"},\"kvs\":[%s]}", a);
    }
    char head[160];
    snprintf(head, sizeof head,
             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             strlen(body));
    send_all(fd, head, strlen(head));
    send_all(fd, body, strlen(body));
}

/* The n-th watch stream. */
static void answer_watch(int fd, int n, const char *request)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, sizeof head - 1);
    if (n == 1) {
        if (strstr(request, "\"start_revision\":\"11\"") == NULL ||
            strstr(request, "\"progress_notify\":true") == NULL)
            return; /* not from revision + 1: the test sees no event and fails */
        char put[768], del[256], key[256];
        kv_json(key, sizeof key, 8002);
        /* the creation ack, cut in the middle */
        chunk(fd, "{\"result\":{\"header\":{\"revision\":\"10\"},\"cre");
        chunk(fd, "ated\":true}}\n");
        /* a PUT of 8002 (no "type": PUT is enum 0) and a progress notification in one
         * chunk, with the first half of a DELETE of 8001 */
        snprintf(put, sizeof put,
                 "{\"result\":{\"header\":{\"revision\":\"11\"},\"events\":[{\"kv\":%s}]}}\n"
                 "{\"result\":{\"header\":{\"revision\":\"11\"}}}\n{\"result\":{\"hea",
                 key);
        chunk(fd, put);
        char *k1 = ward__b64_encode("services/web/127.0.0.1:8001", 27);
        snprintf(del, sizeof del,
                 "der\":{\"revision\":\"12\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":"
                 "\"%s\",\"mod_revision\":\"12\"}}]}}\n",
                 k1);
        free(k1);
        chunk(fd, del);
        usleep(200000);
        /* compacted: the watch is dead, range again */
        chunk(fd, "{\"result\":{\"header\":{\"revision\":\"12\"},\"compact_revision\":\"12\","
                  "\"canceled\":true}}\n");
    } else if (n == 2) {
        chunk(fd, "{\"result\":{\"header\":{\"revision\":\"20\"},\"created\":true}}\n");
        /* then silence, with the connection open */
    } else {
        chunk(fd, "{\"result\":{\"header\":{\"revision\":\"30\"},\"created\":true}}\n");
    }
    while (!atomic_load(&stopping))
        usleep(10000);
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char req[8192] = "";
    size_t len = 0;
    char *end = NULL;
    while (len < sizeof req - 1 && (end = strstr(req, "\r\n\r\n")) == NULL) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            goto done;
        len += (size_t)r;
        req[len] = '\0';
    }
    const char *cl = strcasestr(req, "Content-Length:");
    size_t want = (size_t)(end - req) + 4 + (cl != NULL ? strtoul(cl + 15, NULL, 10) : 0);
    while (len < want && len < sizeof req - 1) {
        ssize_t r = recv(fd, req + len, sizeof req - 1 - len, 0);
        if (r <= 0)
            goto done;
        len += (size_t)r;
        req[len] = '\0';
    }
    if (strncmp(req, "POST /v3/kv/range ", 18) == 0)
        answer_range(fd, atomic_fetch_add(&ranges, 1) + 1);
    else if (strncmp(req, "POST /v3/watch ", 15) == 0)
        answer_watch(fd, atomic_fetch_add(&watches, 1) + 1, req);
done:
    close(fd);
    return NULL;
}

static void *accept_main(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
            pthread_detach(t);
        else
            close(fd);
    }
}

static void setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(lfd >= 0);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(lfd, 16), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&acceptor, NULL, accept_main, NULL), 0);
}

static void teardown(void)
{
    atomic_store(&stopping, true);
    shutdown(lfd, SHUT_RDWR);
    close(lfd);
    pthread_join(acceptor, NULL);
    usleep(50000); /* the detached connection threads see `stopping` */
}

TestSuite(etcd_watch, .init = setup, .fini = teardown, .timeout = 30);

/* The lists the watch reported, as "p1,p2;" strings of ports. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char history[1024];

static void on_change(const struct ward_instances *now, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    size_t n = strlen(history);
    for (size_t i = 0; i < now->len; i++)
        n += (size_t)snprintf(history + n, sizeof history - n, "%s%u", i > 0 ? "," : "",
                              (unsigned)now->items[i].port);
    snprintf(history + n, sizeof history - n, ";");
    pthread_mutex_unlock(&mu);
}

static bool history_is(const char *want, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        pthread_mutex_lock(&mu);
        bool ok = strcmp(history, want) == 0;
        pthread_mutex_unlock(&mu);
        if (ok)
            return true;
        usleep(10000);
    }
    return false;
}

Test(etcd_watch, split_messages_events_compaction_and_silence)
{
    char url[64];
    struct ward_registry_settings s;
    struct ward_registry *r = NULL;

    snprintf(url, sizeof url, "etcd://127.0.0.1:%u", (unsigned)port);
    ward_registry_settings_default(&s);
    s.url = url;
    s.watch_silence = 300 * MS;
    s.backoff.base_ns = 10 * MS;
    cr_assert_eq(ward_registry_new(&s, &r), WARD_ERR_OK);
    cr_assert_eq(ward_registry_watch(r, "web", on_change, NULL), WARD_ERR_OK);
    /* range 1: 8001; PUT 8002; DELETE 8001; compaction → range 2: 8002, 8003; silence →
     * range 3: 8003 */
    bool ok = history_is("8001;8001,8002;8002;8002,8003;8003;", 5000);
    pthread_mutex_lock(&mu);
    cr_assert(ok, "history: %s", history);
    pthread_mutex_unlock(&mu);
    /* the third range happened; its watch follows it (and, silent for 300 ms, so does a
     * fourth range: the counts are looked at as lower bounds, a loaded machine may be
     * anywhere in that cycle) */
    cr_assert_geq(atomic_load(&ranges), 3);
    for (int i = 0; i < 300 && atomic_load(&watches) < 3; i++)
        usleep(10000);
    cr_assert_geq(atomic_load(&watches), 3, "no watch after the third range");
    int64_t t0 = ward_clock_now(ward_clock_real());
    ward_registry_free(r); /* a stream is open: free wakes it at once */
    cr_assert_lt(ward_clock_now(ward_clock_real()) - t0, 500 * MS);
}
