/* tsan_etcd.c — the etcd backend's threads under ThreadSanitizer: a watch (range, then a
 * stream that the fake ends at once, so the loop goes round as fast as it can), a keeper
 * (grant, put, keep-alive every third of a 1 s TTL, its check every 10 ms) and four
 * threads calling the service by name through the resilient client, while the fake etcd
 * flips the instance set; then everything is freed mid-flight. The fake is a fault server
 * whose one body answers every etcd call: "kvs" and "header" for a range, "ID" and "TTL"
 * for a grant, "result" for a watch or a keep-alive. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ward/rclient.h>
#include <ward/registry.h>

#include "../../lib/registry/registry_int.h"
#include "fault_server.h"

#include "tsan_check.h"

#define THREADS 4
#define FLIPS 200


static struct ward_rclient *rc;
static atomic_int ok_calls, all_calls;
static atomic_bool stop;

static void *caller(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop)) {
        struct ward_http_result res = {0};
        enum ward_err err = ward_rclient_call(rc, &(struct ward_http_call){.url = "/x"}, &res);
        if (err == WARD_ERR_OK && res.status == 200)
            atomic_fetch_add(&ok_calls, 1);
        else
            fprintf(stderr, "call failed: %s %ld\n", ward_strerror(err), (long)res.status);
        ward_http_result_fini(&res);
        atomic_fetch_add(&all_calls, 1);
    }
    return NULL;
}

/* One KeyValue of instance port in etcd's endpoints format. */
static int kv(char *buf, size_t size, uint16_t port)
{
    char key[64], value[128];
    snprintf(key, sizeof key, "services/dep/127.0.0.1:%u", (unsigned)port);
    snprintf(value, sizeof value, "{\"Op\":0,\"Addr\":\"127.0.0.1:%u\"}", (unsigned)port);
    char *k = ward__b64_encode(key, strlen(key)), *v = ward__b64_encode(value, strlen(value));
    int n = snprintf(buf, size, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    free(k);
    free(v);
    return n;
}

/* The fake's answer: A, or A and B, at revision rev. */
static void answer(struct fault_server *fake, uint16_t a, uint16_t b, bool both, unsigned rev)
{
    char body[2048];
    int n = snprintf(body, sizeof body,
                     "{\"header\":{\"revision\":\"%u\"},\"ID\":\"7\",\"TTL\":\"1\",\"kvs\":[", rev);
    n += kv(body + n, sizeof body - (size_t)n, a);
    if (both) {
        n += snprintf(body + n, sizeof body - (size_t)n, ",");
        n += kv(body + n, sizeof body - (size_t)n, b);
    }
    snprintf(body + n, sizeof body - (size_t)n,
             "],\"result\":{\"created\":true,\"ID\":\"7\",\"TTL\":\"1\"}}\n");
    fault_server_set(fake, &(struct fault_mode){.kind = FAULT_OK, .body = body});
}

int main(void)
{
    struct fault_server *a = fault_server_start(), *b = fault_server_start(),
                        *fake = fault_server_start();
    struct ward_registry *reg = NULL;
    struct ward_registry_settings rs;
    struct ward_rclient_settings s;
    pthread_t t[THREADS];
    char url[64];

    if (a == NULL || b == NULL || fake == NULL)
        return 1;
    answer(fake, fault_server_port(a), fault_server_port(b), true, 1);
    ward_registry_settings_default(&rs);
    snprintf(url, sizeof url, "etcd://127.0.0.1:%u", (unsigned)fault_server_port(fake));
    rs.url = url;
    rs.lease_ttl = WARD_NS_PER_S;
    check(ward_registry_new(&rs, &reg) == WARD_ERR_OK, "registry client");
    struct ward_registration me = {.id = "me", .name = "me", .address = "127.0.0.1",
                                   .port = fault_server_port(a),
                                   .check_interval = 10 * WARD_NS_PER_MS};
    check(ward_registry_register(reg, &me) == WARD_ERR_OK, "registered on the fake");
    ward_rclient_settings_default(&s);
    s.name = "dep";
    s.discovery.registry = reg;
    check(ward_rclient_new(&s, &rc) == WARD_ERR_OK, "client with discovery");
    if (reg == NULL || rc == NULL)
        return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, caller, NULL);
    for (unsigned rev = 2; rev < 2 + FLIPS; rev++) {
        answer(fake, fault_server_port(a), fault_server_port(b), rev % 2 == 0, rev);
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    check(atomic_load(&all_calls) > 0 && atomic_load(&ok_calls) == atomic_load(&all_calls),
          "every call succeeded");
    check(fault_server_count(b) > 0, "B got calls while listed");
    check(fault_server_count(fake) > FLIPS / 2, "the watch went round");
    printf("calls=%d a=%zu b=%zu fake etcd requests=%zu\n", atomic_load(&all_calls),
           fault_server_count(a), fault_server_count(b), fault_server_count(fake));
    ward_rclient_free(rc);
    ward_registry_free(reg); /* the keeper and the watch mid-flight */
    fault_server_stop(a);
    fault_server_stop(b);
    fault_server_stop(fake);
    return tsan_summary();
}
