/* test_etcd_harness.c — the etcd test harness works (1- and 3-member clusters, kill and
 * restart, KV helpers), and the facts of etcd 3.4's JSON gateway that the registry's etcd
 * backend relies on: int64 as strings, omitted defaults, the least lease TTL, expiry,
 * keep-alive of an unknown lease, watch events and progress notifications. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "etcd_harness.h"

static struct h_etcd *etcd;

static void stop(void)
{
    h_etcd_stop(etcd);
    etcd = NULL;
}

TestSuite(etcd_harness, .fini = stop, .timeout = 60);

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct h_etcd *start(int members)
{
    int64_t t0 = now_ms();
    struct h_etcd *e = h_etcd_start(members);
    fprintf(stderr, "etcd: %d member(s) healthy in %lld ms\n", members,
            (long long)(now_ms() - t0));
    return e;
}

Test(etcd_harness, single_node_kv)
{
    etcd = start(1);
    char want[32];
    snprintf(want, sizeof want, "127.0.0.1:%u", h_etcd_client_port(etcd, 0));
    cr_assert_str_eq(h_etcd_endpoints(etcd), want);
    cr_assert(h_etcd_healthy(etcd, 0));

    cr_assert(h_etcd_put(etcd, "/services/web/a", "10.0.0.1:80", NULL));
    cr_assert(h_etcd_put(etcd, "/services/web/b", "10.0.0.2:80", NULL));
    cr_assert(h_etcd_put(etcd, "/services/web/c", "", NULL));
    cr_assert(h_etcd_put(etcd, "/services/webx", "not under /services/web/", NULL));
    char *v = h_etcd_get(etcd, "/services/web/a");
    cr_assert_str_eq(v, "10.0.0.1:80");
    free(v);
    v = h_etcd_get(etcd, "/services/web/c");
    cr_assert_str_eq(v, "", "an empty value is a key without a value field");
    free(v);
    cr_assert_null(h_etcd_get(etcd, "/services/web/none"));
    cr_assert_eq(h_etcd_count_prefix(etcd, "/services/web/"), 3);
    cr_assert_eq(h_etcd_count_prefix(etcd, "/services/"), 4);
    cr_assert_eq(h_etcd_count_prefix(etcd, "/nothing/"), 0);

    /* the prefix end of clientv3's getPrefix, as the spec's example says */
    char *end = h_etcd_prefix_end_b64("/services/web/");
    cr_assert_str_eq(end, "L3NlcnZpY2VzL3dlYjA=");
    free(end);

    /* the raw shape: int64 as strings, bytes as base64, defaults left out */
    char *key = h_etcd_b64("/services/web/a", 15);
    struct h_resp r;
    cr_assert(h_etcd_post(etcd, -1, "/v3/kv/range", json_pack("{s:s}", "key", key), &r));
    cr_assert_eq(r.status, 200);
    cr_assert(json_is_string(json_object_get(r.json, "count")), "%s", r.body);
    cr_assert(json_is_string(json_object_get(json_object_get(r.json, "header"), "revision")));
    json_t *kv = json_array_get(json_object_get(r.json, "kvs"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(kv, "key")), key);
    cr_assert_null(json_object_get(kv, "lease"), "an unleased key has no lease field");
    cr_assert_str_eq(json_string_value(json_object_get(kv, "version")), "1");
    h_resp_free(&r);
    free(key);

    /* no match: only the header */
    cr_assert(h_etcd_post(etcd, -1, "/v3/kv/range",
                          json_pack("{s:s}", "key", "bm9uZQ=="), &r));
    cr_assert_eq(r.status, 200);
    cr_assert_null(json_object_get(r.json, "kvs"), "%s", r.body);
    cr_assert_null(json_object_get(r.json, "count"), "%s", r.body);
    h_resp_free(&r);

    cr_assert_eq(h_etcd_delete_prefix(etcd, "/services/web/"), 3);
    cr_assert_eq(h_etcd_count_prefix(etcd, "/services/"), 1);
}

Test(etcd_harness, base64_round_trip)
{
    const char *cases[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *b = h_etcd_b64(cases[i], strlen(cases[i]));
        cr_assert_str_eq(b, want[i]);
        size_t n = 0;
        char *d = h_etcd_unb64(b, &n);
        cr_assert_eq(n, strlen(cases[i]));
        cr_assert_str_eq(d, cases[i]);
        free(b);
        free(d);
    }
    cr_assert_null(h_etcd_unb64("Zm9", NULL));
    cr_assert_null(h_etcd_unb64("Z=9v", NULL));
    char *end = h_etcd_prefix_end_b64("\xff\xff");
    cr_assert_str_eq(end, "AA==", "all 0xff: every key from the prefix on");
    free(end);
}

Test(etcd_harness, lease_ttl_is_raised_to_the_minimum)
{
    etcd = start(1);
    long granted = 0;
    char *id = h_etcd_lease_grant(etcd, 1, &granted);
    cr_assert_eq(granted, H_ETCD_MIN_TTL, "heartbeat 50 ms, election 500 ms: least TTL 1 s");
    cr_assert(strlen(id) > 0 && strspn(id, "0123456789") == strlen(id), "ID %s", id);
    free(id);
    id = h_etcd_lease_grant(etcd, 0, &granted);
    cr_assert_eq(granted, H_ETCD_MIN_TTL, "TTL 0 is raised too");
    free(id);
    id = h_etcd_lease_grant(etcd, 7, &granted);
    cr_assert_eq(granted, 7);
    cr_assert(h_etcd_lease_revoke(etcd, id));
    cr_assert_not(h_etcd_lease_revoke(etcd, id), "a revoked lease is gone");
    free(id);

    struct h_resp r;
    cr_assert(h_etcd_post(etcd, -1, "/v3/lease/grant", json_pack("{s:s}", "TTL", "9000000001"),
                          &r));
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
                     "etcdserver: too large lease TTL");
    h_resp_free(&r);
}

Test(etcd_harness, leased_key_goes_when_not_kept_alive)
{
    etcd = start(1);
    long granted = 0;
    char *id = h_etcd_lease_grant(etcd, 1, &granted);
    cr_assert(h_etcd_put(etcd, "/services/web/x", "10.0.0.9:80", id));
    cr_assert(h_etcd_put(etcd, "/services/web/y", "10.0.0.8:80", id));
    cr_assert_not(h_etcd_put(etcd, "/services/web/z", "v", "12345"), "unknown lease: 404");
    int64_t t0 = now_ms();
    cr_assert_eq(h_etcd_count_prefix(etcd, "/services/web/"), 2);

    /* the key carries its lease */
    char *v = h_etcd_get(etcd, "/services/web/x");
    cr_assert_str_eq(v, "10.0.0.9:80");
    free(v);

    while (h_etcd_count_prefix(etcd, "/services/web/") > 0) {
        cr_assert(now_ms() - t0 < 5000, "leased keys still there after 5 s");
        h_sleep_ms(20);
    }
    int64_t gone = now_ms() - t0;
    fprintf(stderr, "etcd: keys under a %ld s lease gone after %lld ms\n", granted,
            (long long)gone);
    cr_assert(gone >= 500, "gone too early: %lld ms", (long long)gone);

    /* an expired lease: time-to-live -1, keep-alive without TTL, revoke 404 */
    struct h_resp r;
    cr_assert(h_etcd_post(etcd, -1, "/v3/lease/timetolive", json_pack("{s:s}", "ID", id), &r));
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "TTL")), "-1", "%s", r.body);
    h_resp_free(&r);
    cr_assert_not(h_etcd_lease_revoke(etcd, id));
    free(id);
}

Test(etcd_harness, keepalive)
{
    etcd = start(1);
    struct h_resp r;
    /* unknown lease: 200, one streamed result with the ID and no TTL field (TTL 0) */
    cr_assert(h_etcd_post(etcd, -1, "/v3/lease/keepalive", json_pack("{s:s}", "ID", "12345"), &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *res = json_object_get(r.json, "result");
    cr_assert_not_null(res, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(res, "ID")), "12345");
    cr_assert_null(json_object_get(res, "TTL"), "%s", r.body);
    cr_assert(r.len > 0 && r.body[r.len - 1] == '\n', "each message ends with a newline");
    h_resp_free(&r);

    /* a live lease: its granted TTL */
    long granted = 0;
    char *id = h_etcd_lease_grant(etcd, 3, &granted);
    cr_assert(h_etcd_post(etcd, -1, "/v3/lease/keepalive", json_pack("{s:s}", "ID", id), &r));
    cr_assert_eq(r.status, 200, "%s", r.body);
    res = json_object_get(r.json, "result");
    cr_assert_str_eq(json_string_value(json_object_get(res, "ID")), id);
    cr_assert_str_eq(json_string_value(json_object_get(res, "TTL")), "3", "%s", r.body);
    h_resp_free(&r);

    /* revoke of an unknown lease: 404 with the gateway's error body */
    cr_assert(h_etcd_post(etcd, -1, "/v3/lease/revoke", json_pack("{s:s}", "ID", "12345"), &r));
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "error")),
                     "etcdserver: requested lease not found");
    cr_assert_eq(json_integer_value(json_object_get(r.json, "code")), 5);
    h_resp_free(&r);
    free(id);
}

/* The JSON messages ({"result":...}) of a chunked stream read so far, into msgs. */
static size_t stream_messages(const char *raw, json_t **msgs, size_t max)
{
    size_t n = 0;
    for (const char *p = strstr(raw, "{\"result\""); p != NULL && n < max;
         p = strstr(p + 1, "{\"result\"")) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL)
            break;
        msgs[n] = json_loadb(p, (size_t)(nl - p), 0, NULL);
        cr_assert_not_null(msgs[n], "not JSON: %.*s", (int)(nl - p), p);
        n++;
    }
    return n;
}

Test(etcd_harness, watch_events_and_progress_notify)
{
    etcd = start(1);
    /* watch everything under /w/ with progress notifications, raw, to see the timing */
    char *end = h_etcd_prefix_end_b64("/w/");
    char *key = h_etcd_b64("/w/", 3);
    char body[256];
    int blen = snprintf(body, sizeof body,
                        "{\"create_request\":{\"key\":\"%s\",\"range_end\":\"%s\","
                        "\"progress_notify\":true}}",
                        key, end);
    free(end);
    free(key);
    char req[512];
    int rlen = snprintf(req, sizeof req,
                        "POST /v3/watch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                        blen, body);
    int fd = h_connect(h_etcd_client_port(etcd, 0));
    cr_assert(fd >= 0);
    cr_assert(h_send(fd, req, (size_t)rlen));

    char raw[65536];
    size_t len = 0;
    json_t *msgs[32] = {0};
    int64_t at[32] = {0};
    size_t seen = 0;
    bool put_done = false, del_done = false;
    int64_t limit = now_ms() + 5000;
    size_t progress = 0;
    while (progress < 3 && now_ms() < limit && len < sizeof raw - 1) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            ssize_t n = read(fd, raw + len, sizeof raw - 1 - len);
            cr_assert(n > 0, "watch stream closed");
            len += (size_t)n;
            raw[len] = '\0';
        }
        for (size_t i = 0; i < seen; i++)
            json_decref(msgs[i]);
        size_t now_seen = stream_messages(raw, msgs, 32);
        for (size_t i = seen; i < now_seen; i++)
            at[i] = now_ms();
        seen = now_seen;
        if (seen >= 1 && !put_done) {
            cr_assert(h_etcd_put(etcd, "/w/a", "1", NULL));
            put_done = true;
        } else if (seen >= 2 && !del_done) {
            cr_assert_eq(h_etcd_delete_prefix(etcd, "/w/"), 1);
            del_done = true;
        }
        progress = seen > 3 ? seen - 3 : 0;
    }
    close(fd);
    cr_assert(strncmp(raw, "HTTP/1.1 200", 12) == 0, "%s", raw);
    cr_assert(strstr(raw, "Transfer-Encoding: chunked") != NULL, "%s", raw);
    cr_assert_geq(seen, 6, "created, put, delete, 3 progress notifications: %s", raw);

    json_t *created = json_object_get(msgs[0], "result");
    cr_assert(json_is_true(json_object_get(created, "created")), "%s", raw);
    cr_assert_null(json_object_get(created, "watch_id"), "watch_id 0 is left out");

    json_t *put = json_array_get(json_object_get(json_object_get(msgs[1], "result"), "events"), 0);
    cr_assert_not_null(put, "%s", raw);
    cr_assert_null(json_object_get(put, "type"), "a PUT event has no type field");
    char *v = h_etcd_unb64(json_string_value(json_object_get(json_object_get(put, "kv"), "value")),
                           NULL);
    cr_assert_str_eq(v, "1");
    free(v);

    json_t *del = json_array_get(json_object_get(json_object_get(msgs[2], "result"), "events"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(del, "type")), "DELETE", "%s", raw);

    /* progress notifications: a header only, every H_ETCD_PROGRESS_MS */
    for (size_t i = 3; i < 6; i++) {
        json_t *res = json_object_get(msgs[i], "result");
        cr_assert_eq(json_object_size(res), 1, "only a header: %s", raw);
        cr_assert_not_null(json_object_get(res, "header"));
        if (i > 3) {
            int64_t gap = at[i] - at[i - 1];
            cr_assert(gap > H_ETCD_PROGRESS_MS / 2 && gap < H_ETCD_PROGRESS_MS * 3,
                      "progress notifications %lld ms apart", (long long)gap);
        }
    }
    fprintf(stderr, "etcd: progress notifications %lld and %lld ms apart\n",
            (long long)(at[4] - at[3]), (long long)(at[5] - at[4]));
    for (size_t i = 0; i < seen; i++)
        json_decref(msgs[i]);
}

Test(etcd_harness, cluster_survives_a_killed_member)
{
    etcd = start(3);
    cr_assert_eq(h_etcd_members(etcd), 3);
    const char *eps = h_etcd_endpoints(etcd);
    cr_assert_eq(strchr(strchr(eps, ',') + 1, ',') != NULL, true, "%s", eps);
    for (int i = 0; i < 3; i++)
        cr_assert(h_etcd_healthy(etcd, i));

    /* kill the leader: the worst case, the others must elect a new one */
    int leader = h_etcd_leader(etcd);
    cr_assert(leader >= 0);
    int a = (leader + 1) % 3, b = (leader + 2) % 3;
    cr_assert(h_etcd_put_on(etcd, leader, "/k/before", "b", NULL));
    h_etcd_kill(etcd, leader);
    cr_assert_not(h_etcd_healthy(etcd, leader));
    int64_t t0 = now_ms();
    /* a write sent at once goes to the dead leader and is lost: the follower answers only
     * after etcd's request timeout (5 s + 2 x election timeout = 6 s) with 503, code 14,
     * "etcdserver: request timed out, possibly due to previous leader failure" */
    struct h_resp r;
    cr_assert(h_etcd_post(etcd, a, "/v3/kv/put", json_pack("{s:s,s:s}", "key", "L2svbG9zdA==",
                                                           "value", "eA=="), &r));
    int64_t took = now_ms() - t0;
    fprintf(stderr, "etcd: put right after the leader was killed: %ld %s after %lld ms\n",
            r.status, r.body, (long long)took);
    if (r.status != 200) { /* 200 only if the election beat the proposal */
        cr_assert_eq(r.status, 503, "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "code")), 14, "%s", r.body);
    }
    h_resp_free(&r);
    /* so a client waits for /health (a leader known, a read goes through) or tries the
     * next endpoint with a timeout of its own */
    t0 = now_ms();
    while (!h_etcd_healthy(etcd, a) || !h_etcd_healthy(etcd, b)) {
        cr_assert(now_ms() - t0 < 5000, "no new leader within 5 s");
        h_sleep_ms(10);
    }
    fprintf(stderr, "etcd: new leader after %lld ms\n", (long long)(now_ms() - t0));
    cr_assert_neq(h_etcd_leader(etcd), leader);
    cr_assert(h_etcd_put_on(etcd, a, "/k/during", "d", NULL));
    char *v = h_etcd_get_on(etcd, b, "/k/during");
    cr_assert_str_eq(v, "d");
    free(v);
    v = h_etcd_get_on(etcd, a, "/k/before");
    cr_assert_str_eq(v, "b");
    free(v);
    cr_assert_geq(h_etcd_count_prefix(etcd, "/k/"), 2, "member -1 skips the killed one");

    t0 = now_ms();
    h_etcd_restart(etcd, leader);
    fprintf(stderr, "etcd: member back healthy in %lld ms\n", (long long)(now_ms() - t0));
    v = h_etcd_get_on(etcd, leader, "/k/during");
    cr_assert_str_eq(v, "d", "the restarted member caught up");
    free(v);
    cr_assert(h_etcd_put_on(etcd, leader, "/k/after", "a", NULL));
    v = h_etcd_get_on(etcd, b, "/k/after");
    cr_assert_str_eq(v, "a");
    free(v);
    cr_assert(h_etcd_wait_healthy(etcd, 5000));
}
