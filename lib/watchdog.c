/* watchdog.c — gives up on suspended requests whose deadline passed: one thread per server
 * sleeps until the earliest deadline and answers 504 in the handler's stead (the handler's
 * own answer, when it comes, is then dropped). It is woken only by a request due before
 * it would wake anyway. */
#include <time.h>

#include <ward/clock.h>
#include <ward/thread.h>

#include "http_int.h"

static void *watch(void *arg)
{
    struct ward_server *srv = arg;
    pthread_mutex_lock(&srv->wd_lock);
    while (!srv->wd_stop) {
        int64_t now = ward_clock_now(NULL);
        int64_t next = INT64_MAX;
        struct ward_req *due = NULL;
        for (struct ward_req *r = srv->wd_head; r != NULL; r = r->wd_next) {
            if (r->deadline <= now) {
                due = r;
                break;
            }
            if (r->deadline < next)
                next = r->deadline;
        }
        if (due != NULL) {
            /* unlink, hold a reference so the request outlives our answer, answer unlocked */
            ward__watchdog_remove_locked(srv, due);
            atomic_fetch_add(&due->refs, 1);
            pthread_mutex_unlock(&srv->wd_lock);
            ward__req_expire(due);
            ward__req_unref(due);
            pthread_mutex_lock(&srv->wd_lock);
            continue;
        }
        srv->wd_wake = next;
        if (next == INT64_MAX) {
            pthread_cond_wait(&srv->wd_cond, &srv->wd_lock);
        } else {
            struct timespec ts = {.tv_sec = next / WARD_NS_PER_S, .tv_nsec = next % WARD_NS_PER_S};
            int rc = pthread_cond_timedwait(&srv->wd_cond, &srv->wd_lock, &ts);
            (void)rc; /* timeout or signal: look again either way */
        }
    }
    pthread_mutex_unlock(&srv->wd_lock);
    return NULL;
}

enum ward_err ward__watchdog_start(struct ward_server *srv)
{
    /* deadlines are CLOCK_MONOTONIC (ward_clock_now) */
    bool ok = ward_cond_init_monotonic(&srv->wd_cond) == WARD_ERR_OK;
    if (!ok)
        return WARD_ERR_SYSTEM;
    if (pthread_mutex_init(&srv->wd_lock, NULL) != 0) {
        pthread_cond_destroy(&srv->wd_cond);
        return WARD_ERR_SYSTEM;
    }
    srv->wd_stop = false;
    srv->wd_wake = INT64_MAX; /* until the thread has looked once, every add wakes it */
    /* the thread must not take the signals meant for the server */
    if (ward_thread_start(&srv->wd_thread, watch, srv) != WARD_ERR_OK) {
        pthread_mutex_destroy(&srv->wd_lock);
        pthread_cond_destroy(&srv->wd_cond);
        return WARD_ERR_SYSTEM;
    }
    srv->wd_running = true;
    return WARD_ERR_OK;
}

void ward__watchdog_stop(struct ward_server *srv)
{
    if (!srv->wd_running)
        return;
    pthread_mutex_lock(&srv->wd_lock);
    srv->wd_stop = true;
    pthread_cond_signal(&srv->wd_cond);
    pthread_mutex_unlock(&srv->wd_lock);
    pthread_join(srv->wd_thread, NULL);
    pthread_mutex_destroy(&srv->wd_lock);
    pthread_cond_destroy(&srv->wd_cond);
    srv->wd_running = false;
}

void ward__watchdog_add(struct ward_server *srv, struct ward_req *req)
{
    pthread_mutex_lock(&srv->wd_lock);
    req->wd_prev = NULL;
    req->wd_next = srv->wd_head;
    if (srv->wd_head != NULL)
        srv->wd_head->wd_prev = req;
    srv->wd_head = req;
    req->wd_linked = true;
    /* only a deadline before the watchdog's next look needs it awake now: sparing the
     * wake-up (and the scan) for every other suspended request */
    if (req->deadline < srv->wd_wake) {
        srv->wd_wake = req->deadline;
        pthread_cond_signal(&srv->wd_cond);
    }
    pthread_mutex_unlock(&srv->wd_lock);
}

void ward__watchdog_remove_locked(struct ward_server *srv, struct ward_req *req)
{
    if (!req->wd_linked)
        return;
    if (req->wd_prev != NULL)
        req->wd_prev->wd_next = req->wd_next;
    else
        srv->wd_head = req->wd_next;
    if (req->wd_next != NULL)
        req->wd_next->wd_prev = req->wd_prev;
    req->wd_prev = req->wd_next = NULL;
    req->wd_linked = false;
}

void ward__watchdog_remove(struct ward_server *srv, struct ward_req *req)
{
    pthread_mutex_lock(&srv->wd_lock);
    ward__watchdog_remove_locked(srv, req);
    pthread_mutex_unlock(&srv->wd_lock);
}
