/* tsan_discovery.c — threads calling a service by name through one resilient client while
 * the registry watch keeps changing the instance set under them, built with
 * ThreadSanitizer: a fault server plays the Consul agent and flips the service between
 * {A, B} and {A} with a new index every 2 ms; every call must still succeed, and the
 * balancer must have followed the changes. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ward/rclient.h>
#include <ward/registry.h>

#include "fault_server.h"

#include "tsan_check.h"

#define THREADS 4
#define FLIPS 300


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

/* One Consul health entry. */
static int entry(char *buf, size_t size, const char *id, uint16_t port)
{
    return snprintf(buf, size,
                    "{\"Node\":{\"Address\":\"127.0.0.1\"},\"Service\":{\"ID\":\"%s\","
                    "\"Service\":\"dep\",\"Address\":\"127.0.0.1\",\"Port\":%u},\"Checks\":[]}",
                    id, (unsigned)port);
}

/* The agent's next answer: both instances or only A, at index idx. */
static void answer(struct fault_server *agent, uint16_t a, uint16_t b, bool both, unsigned idx)
{
    char body[1024], index[32];
    int n = snprintf(body, sizeof body, "[");

    n += entry(body + n, sizeof body - (size_t)n, "a", a);
    if (both) {
        n += snprintf(body + n, sizeof body - (size_t)n, ",");
        n += entry(body + n, sizeof body - (size_t)n, "b", b);
    }
    snprintf(body + n, sizeof body - (size_t)n, "]");
    snprintf(index, sizeof index, "%u", idx);
    struct fault_mode m = {.kind = FAULT_OK, .body = body,
                           .headers = {{"X-Consul-Index", index}}};
    fault_server_set(agent, &m);
}

int main(void)
{
    struct fault_server *a = fault_server_start(), *b = fault_server_start(),
                        *agent = fault_server_start();
    struct ward_registry *reg = NULL;
    struct ward_registry_settings rs;
    struct ward_rclient_settings s;
    pthread_t t[THREADS];
    char url[64];

    if (a == NULL || b == NULL || agent == NULL)
        return 1;
    answer(agent, fault_server_port(a), fault_server_port(b), true, 1);
    ward_registry_settings_default(&rs);
    snprintf(url, sizeof url, "consul://127.0.0.1:%u", (unsigned)fault_server_port(agent));
    rs.url = url;
    rs.watch_rate = 2000; /* the agent answers at once: let the watch spin */
    check(ward_registry_new(&rs, &reg) == WARD_ERR_OK, "registry client");
    ward_rclient_settings_default(&s);
    s.name = "dep";
    s.discovery.registry = reg;
    check(ward_rclient_new(&s, &rc) == WARD_ERR_OK, "client with discovery");
    if (reg == NULL || rc == NULL)
        return 1;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, caller, NULL);
    /* flip the set while the callers run: about 500 changes a second */
    unsigned idx = 2;
    while (idx < 2 + FLIPS) {
        answer(agent, fault_server_port(a), fault_server_port(b), idx % 2 == 0, idx);
        idx++;
        nanosleep(&(struct timespec){.tv_nsec = 2000000}, NULL);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    check(atomic_load(&all_calls) > 0 && atomic_load(&ok_calls) == atomic_load(&all_calls),
          "every call succeeded");
    check(fault_server_count(a) + fault_server_count(b) == (size_t)atomic_load(&all_calls),
          "every call reached one instance once");
    check(fault_server_count(b) > 0, "B got calls while listed");
    check(fault_server_count(agent) > FLIPS / 4, "the watch followed many changes");
    printf("calls=%d a=%zu b=%zu watch queries=%zu flips=%u\n", atomic_load(&all_calls),
           fault_server_count(a), fault_server_count(b), fault_server_count(agent), idx - 2);
    ward_rclient_free(rc);
    ward_registry_free(reg);
    fault_server_stop(a);
    fault_server_stop(b);
    fault_server_stop(agent);
    return tsan_summary();
}
