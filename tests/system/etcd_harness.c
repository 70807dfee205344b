/* etcd_harness.c — see etcd_harness.h. Members are h_spawn'ed (own process group, killed
 * with the test, stderr read by a thread so the pipe never fills); all data dirs live in
 * one mkdtemp'ed directory per cluster that h_etcd_stop removes. */
#include "etcd_harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_MS "50"
#define ELECTION_MS "500"
#define START_TIMEOUT_MS 15000
#define START_ATTEMPTS 3

struct member {
    char name[16];
    char *dir;
    uint16_t client_port, peer_port;
    struct h_proc *proc; /* NULL while killed */
    char *old_log;       /* what killed incarnations wrote */
};

struct h_etcd {
    int n;
    char *root;
    char *token;
    char *endpoints;
    char *initial_cluster;
    char *etcd_bin;
    struct member m[H_ETCD_MAX_MEMBERS];
    struct h_etcd *next_live;
};

/* Clusters not stopped yet: an atexit net in case a test forgot its h_etcd_stop. */
static struct h_etcd *live;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- base64 ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *h_etcd_b64(const void *data, size_t len)
{
    const unsigned char *in = data;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    cr_assert(out != NULL);
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_alphabet[(v >> 18) & 63];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64_alphabet, c) : NULL;
    return p != NULL ? (int)(p - b64_alphabet) : -1;
}

char *h_etcd_unb64(const char *text, size_t *len)
{
    size_t n = strlen(text);
    if (n % 4 != 0)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    cr_assert(out != NULL);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = text[i + (size_t)k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
                free(out);
                return NULL;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[o++] = (char)(w >> 16);
        if (pad < 2)
            out[o++] = (char)(w >> 8);
        if (pad < 1)
            out[o++] = (char)w;
    }
    out[o] = '\0';
    if (len != NULL)
        *len = o;
    return out;
}

char *h_etcd_prefix_end_b64(const char *prefix)
{
    size_t n = strlen(prefix);
    unsigned char *end = (unsigned char *)strdup(prefix);
    cr_assert(end != NULL);
    while (n > 0 && end[n - 1] == 0xff)
        n--;
    char *out;
    if (n == 0) {
        out = h_etcd_b64("", 1); /* "\0": every key from prefix on */
    } else {
        end[n - 1]++;
        out = h_etcd_b64(end, n);
    }
    free(end);
    return out;
}

/* ---- processes and directories ---- */

static char *find_etcd(void)
{
    const char *env = getenv("WARD_ETCD_BIN");
    if (env != NULL && *env != '\0')
        return strdup(env);
    const char *path = getenv("PATH");
    char *copy = strdup(path != NULL ? path : "/usr/local/bin:/usr/bin:/bin");
    char *found = NULL;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL && found == NULL;
         dir = strtok_r(NULL, ":", &save)) {
        char *cand = NULL;
        cr_assert(asprintf(&cand, "%s/etcd", dir) > 0);
        if (access(cand, X_OK) == 0)
            found = cand;
        else
            free(cand);
    }
    free(copy);
    return found;
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

/* Reserves count distinct free ports: all sockets stay bound until every port is known. */
static void free_ports(uint16_t *ports, int count)
{
    int fds[2 * H_ETCD_MAX_MEMBERS];
    for (int i = 0; i < count; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(fds[i] >= 0, "socket: %s", strerror(errno));
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        cr_assert(bind(fds[i], (struct sockaddr *)&sa, sizeof sa) == 0, "bind: %s",
                  strerror(errno));
        cr_assert(getsockname(fds[i], (struct sockaddr *)&sa, &len) == 0);
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < count; i++)
        close(fds[i]);
}

static void member_spawn(struct h_etcd *e, int i, const char *state)
{
    struct member *m = &e->m[i];
    char client[64], peer[64], tick[32];
    snprintf(client, sizeof client, "http://127.0.0.1:%u", m->client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%u", m->peer_port);
    snprintf(tick, sizeof tick, "%dms", H_ETCD_PROGRESS_MS);
    const char *argv[] = {e->etcd_bin,
                          "--name", m->name,
                          "--data-dir", m->dir,
                          "--listen-client-urls", client,
                          "--advertise-client-urls", client,
                          "--listen-peer-urls", peer,
                          "--initial-advertise-peer-urls", peer,
                          "--initial-cluster", e->initial_cluster,
                          "--initial-cluster-state", state,
                          "--initial-cluster-token", e->token,
                          "--heartbeat-interval", HEARTBEAT_MS,
                          "--election-timeout", ELECTION_MS,
                          "--experimental-watch-progress-notify-interval", tick,
                          "--auto-compaction-retention", "0",
                          "--logger", "zap",
                          "--log-outputs", "stderr",
                          "--log-level", "warn",
                          NULL};
    m->proc = h_spawn(e->etcd_bin, argv);
}

/* Kills a member's process group, reaps it and keeps its log. */
static void member_kill(struct member *m)
{
    struct h_proc *p = m->proc;
    if (p == NULL)
        return;
    kill(-p->pid, SIGKILL);
    h_wait(p, 10000);
    pthread_mutex_lock(&p->lock);
    for (int64_t limit = now_ms() + 2000; !p->eof && now_ms() < limit;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
    char *joined = NULL;
    cr_assert(asprintf(&joined, "%s%s", m->old_log != NULL ? m->old_log : "",
                       p->log != NULL ? p->log : "") >= 0);
    pthread_mutex_unlock(&p->lock);
    free(m->old_log);
    m->old_log = joined;
    p->status = 0; /* an exit we caused: h_free need not dump the log */
    h_free(p);
    m->proc = NULL;
}

static bool member_exited(const struct member *m)
{
    return m->proc == NULL || h_wait(m->proc, 0) >= 0;
}

static bool member_log_has(const struct member *m, const char *needle)
{
    if (m->proc == NULL)
        return false;
    pthread_mutex_lock(&m->proc->lock);
    bool hit = m->proc->log != NULL && strstr(m->proc->log, needle) != NULL;
    pthread_mutex_unlock(&m->proc->lock);
    return hit;
}

void h_etcd_dump_logs(const struct h_etcd *e)
{
    for (int i = 0; e != NULL && i < e->n; i++) {
        const struct member *m = &e->m[i];
        fprintf(stderr, "---- etcd member %s (client %u, peer %u) ----\n", m->name,
                m->client_port, m->peer_port);
        if (m->old_log != NULL)
            fputs(m->old_log, stderr);
        if (m->proc != NULL) {
            pthread_mutex_lock(&m->proc->lock);
            fputs(m->proc->log != NULL ? m->proc->log : "", stderr);
            pthread_mutex_unlock(&m->proc->lock);
        }
    }
    fprintf(stderr, "---- end of etcd logs ----\n");
}

static void cluster_free(struct h_etcd *e)
{
    for (struct h_etcd **pp = &live; *pp != NULL; pp = &(*pp)->next_live) {
        if (*pp == e) {
            *pp = e->next_live;
            break;
        }
    }
    for (int i = 0; i < e->n; i++) {
        member_kill(&e->m[i]);
        free(e->m[i].dir);
        free(e->m[i].old_log);
    }
    rm_rf(e->root);
    free(e->root);
    free(e->token);
    free(e->endpoints);
    free(e->initial_cluster);
    free(e->etcd_bin);
    free(e);
}

static void stop_leftovers(void)
{
    while (live != NULL)
        cluster_free(live);
}

void h_etcd_stop(struct h_etcd *e)
{
    if (e != NULL)
        cluster_free(e);
}

/* ---- health ---- */

bool h_etcd_healthy(const struct h_etcd *e, int member)
{
    cr_assert(member >= 0 && member < e->n);
    const struct member *m = &e->m[member];
    if (member_exited(m))
        return false;
    struct h_resp r;
    bool ok = h_http(m->client_port, "GET", "/health", NULL, NULL, 0, &r) && r.status == 200;
    const char *health = ok ? json_string_value(json_object_get(r.json, "health")) : NULL;
    ok = health != NULL && strcmp(health, "true") == 0;
    h_resp_free(&r);
    return ok;
}

bool h_etcd_wait_healthy(const struct h_etcd *e, int timeout_ms)
{
    for (int64_t limit = now_ms() + timeout_ms;; h_sleep_ms(10)) {
        bool all = true;
        for (int i = 0; i < e->n && all; i++)
            all = e->m[i].proc == NULL || h_etcd_healthy(e, i);
        if (all)
            return true;
        if (now_ms() >= limit)
            return false;
    }
}

/* Waits until every member is healthy: 1 when so, 0 on a port collision (retry with new
 * ports), -1 on another failure. */
static int await_start(struct h_etcd *e)
{
    int64_t limit = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        bool all = true;
        for (int i = 0; i < e->n; i++) {
            if (member_exited(&e->m[i]))
                return member_log_has(&e->m[i], "address already in use") ? 0 : -1;
            if (all && !h_etcd_healthy(e, i))
                all = false;
        }
        if (all)
            return 1;
        if (now_ms() >= limit)
            return -1;
        h_sleep_ms(10);
    }
}

struct h_etcd *h_etcd_start(int members)
{
    static unsigned seq;
    cr_assert(members >= 1 && members <= H_ETCD_MAX_MEMBERS, "h_etcd_start(%d)", members);
    struct h_etcd *e = calloc(1, sizeof *e);
    cr_assert(e != NULL);
    e->n = members;
    e->etcd_bin = find_etcd();
    if (e->etcd_bin == NULL) {
        free(e);
        cr_assert_fail("etcd not found on PATH (scripts/deps.sh test installs etcd-server)");
    }
    const char *tmp = getenv("TMPDIR");
    cr_assert(asprintf(&e->root, "%s/ward-etcd-XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp") > 0);
    if (mkdtemp(e->root) == NULL) {
        free(e->root);
        free(e->etcd_bin);
        free(e);
        cr_assert_fail("mkdtemp: %s", strerror(errno));
    }
    static bool registered;
    if (!registered)
        atexit(stop_leftovers);
    registered = true;
    e->next_live = live;
    live = e;
    for (int i = 0; i < members; i++) {
        snprintf(e->m[i].name, sizeof e->m[i].name, "m%d", i);
        cr_assert(asprintf(&e->m[i].dir, "%s/%s", e->root, e->m[i].name) > 0);
    }

    for (int attempt = 1;; attempt++) {
        uint16_t ports[2 * H_ETCD_MAX_MEMBERS];
        free_ports(ports, 2 * members);
        free(e->token);
        free(e->endpoints);
        free(e->initial_cluster);
        cr_assert(asprintf(&e->token, "ward-test-%d-%u-%d", (int)getpid(), seq++, attempt) > 0);
        size_t cap = (size_t)members * 48 + 1;
        e->endpoints = calloc(1, cap);
        e->initial_cluster = calloc(1, cap);
        cr_assert(e->endpoints != NULL && e->initial_cluster != NULL);
        for (int i = 0; i < members; i++) {
            struct member *m = &e->m[i];
            m->client_port = ports[2 * i];
            m->peer_port = ports[2 * i + 1];
            size_t el = strlen(e->endpoints), il = strlen(e->initial_cluster);
            snprintf(e->endpoints + el, cap - el, "%s127.0.0.1:%u", i ? "," : "", m->client_port);
            snprintf(e->initial_cluster + il, cap - il, "%s%s=http://127.0.0.1:%u", i ? "," : "",
                     m->name, m->peer_port);
        }
        for (int i = 0; i < members; i++)
            member_spawn(e, i, "new");
        int got = await_start(e);
        if (got == 1)
            return e;
        if (got < 0 || attempt == START_ATTEMPTS) {
            h_etcd_dump_logs(e);
            cluster_free(e);
            cr_assert_fail("etcd cluster of %d did not become healthy", members);
        }
        /* a port was taken between free_ports and etcd's bind: start over, fresh dirs */
        for (int i = 0; i < members; i++) {
            member_kill(&e->m[i]);
            rm_rf(e->m[i].dir);
        }
    }
}

/* ---- accessors, kill, restart ---- */

int h_etcd_members(const struct h_etcd *e)
{
    return e->n;
}

const char *h_etcd_endpoints(const struct h_etcd *e)
{
    return e->endpoints;
}

uint16_t h_etcd_client_port(const struct h_etcd *e, int member)
{
    cr_assert(member >= 0 && member < e->n);
    return e->m[member].client_port;
}

void h_etcd_kill(struct h_etcd *e, int member)
{
    cr_assert(member >= 0 && member < e->n);
    cr_assert(e->m[member].proc != NULL, "etcd member %d is not running", member);
    member_kill(&e->m[member]);
}

void h_etcd_restart(struct h_etcd *e, int member)
{
    cr_assert(member >= 0 && member < e->n);
    struct member *m = &e->m[member];
    cr_assert(m->proc == NULL, "etcd member %d is still running", member);
    /* it has a WAL: the cluster flags are ignored, "existing" says what we mean */
    member_spawn(e, member, "existing");
    for (int64_t limit = now_ms() + START_TIMEOUT_MS; !h_etcd_healthy(e, member); h_sleep_ms(10)) {
        if (member_exited(m) || now_ms() >= limit) {
            h_etcd_dump_logs(e);
            cr_assert_fail("etcd member %d did not come back healthy", member);
        }
    }
}

void h_etcd_restart_empty(struct h_etcd *e)
{
    cr_assert(e->n == 1, "only a one-member cluster can start over empty");
    struct member *m = &e->m[0];
    cr_assert(m->proc == NULL, "etcd member 0 is still running");
    rm_rf(m->dir);
    member_spawn(e, 0, "new");
    for (int64_t limit = now_ms() + START_TIMEOUT_MS; !h_etcd_healthy(e, 0); h_sleep_ms(10)) {
        if (member_exited(m) || now_ms() >= limit) {
            h_etcd_dump_logs(e);
            cr_assert_fail("etcd did not come back healthy from an empty data dir");
        }
    }
}

static uint64_t header_member(const json_t *reply)
{
    const json_t *header = json_object_get(reply, "header");
    const char *id = json_string_value(json_object_get(header, "member_id"));
    return id != NULL ? strtoull(id, NULL, 10) : 0;
}

int h_etcd_leader(const struct h_etcd *e)
{
    uint64_t leader = 0;
    for (int i = 0; i < e->n && leader == 0; i++) {
        struct h_resp r = {0};
        if (e->m[i].proc != NULL &&
            h_etcd_post(e, i, "/v3/maintenance/status", json_object(), &r) && r.status == 200) {
            const char *id = json_string_value(json_object_get(r.json, "leader"));
            leader = id != NULL ? strtoull(id, NULL, 10) : 0;
        }
        h_resp_free(&r);
    }
    for (int i = 0; i < e->n && leader != 0; i++) {
        struct h_resp r = {0};
        bool mine = e->m[i].proc != NULL &&
                    h_etcd_post(e, i, "/v3/maintenance/status", json_object(), &r) &&
                    r.status == 200 && header_member(r.json) == leader;
        h_resp_free(&r);
        if (mine)
            return i;
    }
    return -1;
}

/* ---- the JSON gateway ---- */

bool h_etcd_post(const struct h_etcd *e, int member, const char *path, json_t *body,
                 struct h_resp *r)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    cr_assert(text != NULL);
    bool ok = false;
    memset(r, 0, sizeof *r);
    for (int i = member >= 0 ? member : 0; i < e->n && !ok; i++) {
        if (e->m[i].proc != NULL) {
            ok = h_http(e->m[i].client_port, "POST", path, NULL, text, strlen(text), r);
            if (!ok)
                h_resp_free(r);
        }
        if (member >= 0)
            break;
    }
    free(text);
    return ok;
}

static json_t *b64_json(const char *s)
{
    char *b = h_etcd_b64(s, strlen(s));
    json_t *j = json_string(b);
    free(b);
    return j;
}

static json_t *prefix_range(const char *prefix)
{
    char *end = h_etcd_prefix_end_b64(prefix);
    json_t *req = json_pack("{s:o,s:s}", "key", b64_json(prefix), "range_end", end);
    free(end);
    return req;
}

static void expect_ok(bool sent, const struct h_resp *r, const char *what)
{
    cr_assert(sent, "etcd %s: no answer", what);
    cr_assert_eq(r->status, 200, "etcd %s: %ld %s", what, r->status, r->body);
    cr_assert(r->json != NULL, "etcd %s: not JSON: %s", what, r->body);
}

/* An int64 field the gateway writes as a string (absent when 0). */
static long long int64_field(const json_t *obj, const char *name)
{
    const json_t *v = json_object_get(obj, name);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

bool h_etcd_put_on(const struct h_etcd *e, int member, const char *key, const char *value,
                   const char *lease)
{
    json_t *req = json_pack("{s:o,s:o}", "key", b64_json(key), "value", b64_json(value));
    if (lease != NULL)
        json_object_set_new(req, "lease", json_string(lease));
    struct h_resp r;
    bool ok = h_etcd_post(e, member, "/v3/kv/put", req, &r) && r.status == 200;
    h_resp_free(&r);
    return ok;
}

bool h_etcd_put(const struct h_etcd *e, const char *key, const char *value, const char *lease)
{
    return h_etcd_put_on(e, -1, key, value, lease);
}

char *h_etcd_get_on(const struct h_etcd *e, int member, const char *key)
{
    struct h_resp r;
    bool sent =
        h_etcd_post(e, member, "/v3/kv/range", json_pack("{s:o}", "key", b64_json(key)), &r);
    expect_ok(sent, &r, "range");
    const json_t *kv = json_array_get(json_object_get(r.json, "kvs"), 0);
    char *value = NULL;
    if (kv != NULL) {
        const char *b = json_string_value(json_object_get(kv, "value"));
        value = b != NULL ? h_etcd_unb64(b, NULL) : strdup("");
        cr_assert(value != NULL, "etcd range: bad value in %s", r.body);
    }
    h_resp_free(&r);
    return value;
}

char *h_etcd_get(const struct h_etcd *e, const char *key)
{
    return h_etcd_get_on(e, -1, key);
}

size_t h_etcd_count_prefix(const struct h_etcd *e, const char *prefix)
{
    json_t *req = prefix_range(prefix);
    json_object_set_new(req, "count_only", json_true());
    struct h_resp r;
    bool sent = h_etcd_post(e, -1, "/v3/kv/range", req, &r);
    expect_ok(sent, &r, "range");
    size_t n = (size_t)int64_field(r.json, "count");
    h_resp_free(&r);
    return n;
}

size_t h_etcd_delete_prefix(const struct h_etcd *e, const char *prefix)
{
    struct h_resp r;
    bool sent = h_etcd_post(e, -1, "/v3/kv/deleterange", prefix_range(prefix), &r);
    expect_ok(sent, &r, "deleterange");
    size_t n = (size_t)int64_field(r.json, "deleted");
    h_resp_free(&r);
    return n;
}

char *h_etcd_lease_grant(const struct h_etcd *e, long ttl, long *granted)
{
    char ttl_s[32];
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl);
    struct h_resp r;
    bool sent = h_etcd_post(e, -1, "/v3/lease/grant", json_pack("{s:s}", "TTL", ttl_s), &r);
    expect_ok(sent, &r, "lease grant");
    const char *id = json_string_value(json_object_get(r.json, "ID"));
    cr_assert(id != NULL, "etcd lease grant: no ID in %s", r.body);
    char *copy = strdup(id);
    if (granted != NULL)
        *granted = (long)int64_field(r.json, "TTL");
    h_resp_free(&r);
    return copy;
}

bool h_etcd_lease_revoke(const struct h_etcd *e, const char *lease)
{
    struct h_resp r;
    bool ok = h_etcd_post(e, -1, "/v3/lease/revoke", json_pack("{s:s}", "ID", lease), &r) &&
              r.status == 200;
    h_resp_free(&r);
    return ok;
}
