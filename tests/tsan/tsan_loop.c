/* tsan_loop.c — several threads submitting non-blocking calls (ward_httpc_send and
 * ward_rclient_call_async) to one event loop at once, built with ThreadSanitizer: every
 * callback must run exactly once, on the loop thread, with its own call's answer, and
 * freeing the loop with calls hanging must still call each back once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ward/loop.h>
#include <ward/rclient.h>

#include "fault_server.h"

#include "tsan_check.h"

#define THREADS 6
#define CALLS 30
#define TOTAL (THREADS * CALLS)


/* One call and what its callback saw. */
struct slot {
    char path[48];
    atomic_int calls; /* callbacks run for it */
    enum ward_err err;
    int status;
    bool body_ok;
    pthread_t ran_on;
};

static struct slot slots[TOTAL];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done;

static struct ward_loop *loop;
static struct ward_rclient *rc;
static uint16_t port;
static atomic_int refused; /* submissions that returned an error */

static void on_done(enum ward_err err, struct ward_http_result *res, void *arg)
{
    struct slot *s = arg;

    atomic_fetch_add(&s->calls, 1);
    s->err = err;
    s->status = res->status;
    s->body_ok = res->body != NULL && strstr(res->body, s->path) != NULL;
    s->ran_on = pthread_self();
    ward_http_result_fini(res);
    pthread_mutex_lock(&mu);
    done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static bool wait_done(int n, int seconds)
{
    struct timespec until;
    bool ok = true;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += seconds;
    pthread_mutex_lock(&mu);
    while (done < n && ok)
        ok = pthread_cond_timedwait(&cv, &mu, &until) == 0;
    ok = done >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static void reset(void)
{
    for (int i = 0; i < TOTAL; i++) {
        slots[i] = (struct slot){0};
        atomic_init(&slots[i].calls, 0);
    }
    pthread_mutex_lock(&mu);
    done = 0;
    pthread_mutex_unlock(&mu);
    atomic_store(&refused, 0);
}

/* Submits CALLS calls; arg is the thread's index. Even threads use the resilient client,
 * odd ones the plain HTTP call. */
static void *submitter(void *arg)
{
    int t = (int)(intptr_t)arg;
    char url[96];

    for (int i = 0; i < CALLS; i++) {
        struct slot *s = &slots[t * CALLS + i];
        enum ward_err e;

        snprintf(s->path, sizeof s->path, "/t%d/c%d", t, i);
        if (t % 2 == 0) {
            e = ward_rclient_call_async(rc, loop, &(struct ward_http_call){.url = s->path},
                                        on_done, s);
        } else {
            snprintf(url, sizeof url, "http://127.0.0.1:%u%s", (unsigned)port, s->path);
            e = ward_httpc_send(loop, &(struct ward_http_call){.url = url}, on_done, s);
        }
        if (e != WARD_ERR_OK)
            atomic_fetch_add(&refused, 1);
    }
    return NULL;
}

static void run_submitters(void)
{
    pthread_t th[THREADS];

    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, submitter, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
}

int main(void)
{
    struct fault_server *fs = fault_server_start();
    struct ward_rclient_settings s;
    struct ward_bulkhead_stats bst;
    char base[64];
    bool once = true, answers = true, one_thread = true, failed_state = true;

    if (fs == NULL) {
        printf("FAIL - fault server started\n0 passed, 1 failed\n");
        return 1;
    }
    port = fault_server_port(fs);
    snprintf(base, sizeof base, "http://127.0.0.1:%u", (unsigned)port);
    ward_rclient_settings_default(&s);
    s.name = "dep";
    s.base_url = base;
    s.bulkhead.settings.max_concurrent = TOTAL;
    if (ward_rclient_new(&s, &rc) != WARD_ERR_OK || ward_loop_new(NULL, &loop) != WARD_ERR_OK) {
        printf("FAIL - client and loop created\n0 passed, 1 failed\n");
        return 1;
    }

    reset();
    run_submitters();
    check(atomic_load(&refused) == 0, "every submission accepted");
    check(wait_done(TOTAL, 20), "every call completed");
    for (int i = 0; i < TOTAL; i++) {
        once = once && atomic_load(&slots[i].calls) == 1;
        answers = answers && slots[i].err == WARD_ERR_OK && slots[i].status == 200 &&
                  slots[i].body_ok;
        one_thread = one_thread && pthread_equal(slots[i].ran_on, slots[0].ran_on) &&
                     !pthread_equal(slots[i].ran_on, pthread_self());
    }
    check(once, "each callback ran exactly once");
    check(answers, "each call got its own answer");
    check(one_thread, "every callback ran on the loop thread");
    check(fault_server_count(fs) == TOTAL, "one request per call");
    ward_bulkhead_stats(ward_rclient_bulkhead(rc), &bst);
    check(bst.in_use == 0 && bst.rejections == 0, "the bulkhead slots all came back");

    reset();
    fault_server_reset(fs);
    fault_server_set(fs, &(struct fault_mode){.kind = FAULT_HANG});
    run_submitters();
    check(fault_server_wait_count(fs, TOTAL, 20000), "every call is hanging at the server");
    ward_loop_free(loop);
    loop = NULL;
    once = true;
    for (int i = 0; i < TOTAL; i++) {
        once = once && atomic_load(&slots[i].calls) == 1;
        failed_state = failed_state && slots[i].err == WARD_ERR_STATE;
    }
    check(done == TOTAL && once, "free called every hanging call back exactly once");
    check(failed_state, "with WARD_ERR_STATE");
    ward_bulkhead_stats(ward_rclient_bulkhead(rc), &bst);
    check(bst.in_use == 0, "the bulkhead slots all came back after the stop");

    ward_rclient_free(rc);
    fault_server_stop(fs);
    return tsan_summary();
}
