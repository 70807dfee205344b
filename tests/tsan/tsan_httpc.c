/* tsan_httpc.c — one HTTP client shared by eight threads against the fault server, with
 * metrics exported mid-run: every answer must be the one asked for, and the counts must
 * add up. Run under ThreadSanitizer by make test. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/httpc.h>

#include "fault_server.h"

enum { THREADS = 8, CALLS = 50 };

static struct fault_server *fs;
static struct ward_httpc *client;
static struct ward_metrics *reg;

static void *work(void *arg)
{
    long id = (long)arg;
    long wrong = 0;
    for (int j = 0; j < CALLS; j++) {
        char path[64], url[128];
        snprintf(path, sizeof path, "/w%ld/%d", id, j);
        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", fault_server_port(fs), path);
        struct ward_http_result res;
        json_t *out = NULL;
        enum ward_err err = ward_httpc_json(client, &(struct ward_http_call){.url = url}, NULL, &res, &out);
        const char *got = out != NULL ? json_string_value(json_object_get(out, "path")) : NULL;
        if (err != WARD_ERR_OK || res.status != 200 || got == NULL || strcmp(got, path) != 0)
            wrong++;
        json_decref(out);
        ward_http_result_fini(&res);
        if (id == 0 && j == 10 && ward_httpc_export(client, reg) != WARD_ERR_OK)
            wrong++;
    }
    return (void *)wrong;
}

int main(void)
{
    int passed = 0, failed = 0;
    fs = fault_server_start();
    reg = ward_metrics_new();
    struct ward_httpc_settings s;
    ward_httpc_settings_default(&s);
    s.pool_size = 3; /* fewer idle handles than threads: the pool is contended */
    if (fs == NULL || reg == NULL || ward_httpc_new(&s, &client) != WARD_ERR_OK) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    pthread_t t[THREADS];
    long bad = 0;
    for (long i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += (long)r;
    }
    printf("every answer matched its request: %s (%ld wrong)\n", bad == 0 ? "yes" : "NO", bad);
    bad == 0 ? passed++ : failed++;
    size_t n = fault_server_count(fs);
    printf("the server saw every call once: %s (%zu of %d)\n", n == THREADS * CALLS ? "yes" : "NO", n,
           THREADS * CALLS);
    n == THREADS * CALLS ? passed++ : failed++;
    ward_httpc_free(client);
    ward_metrics_free(reg);
    fault_server_stop(fs);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
