/* thread.h — helper threads of a daemon: started so that they never take the signals
 * meant for the shutdown loop (ward_server_run waits for SIGTERM/SIGINT with sigwait),
 * and waiting on the monotonic clock that ward deadlines use. */
#ifndef WARD_THREAD_H
#define WARD_THREAD_H

#include <pthread.h>

#include <ward/err.h>

/* pthread_create(t, NULL, fn, arg) with every signal blocked in the new thread; the
 * caller's mask is unchanged. OK, or SYSTEM when the thread cannot start. */
WARD_MUST_CHECK enum ward_err ward_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* pthread_cond_init on CLOCK_MONOTONIC, the clock of ward_clock_now, so that timed waits
 * take ward deadlines. OK, or SYSTEM. */
WARD_MUST_CHECK enum ward_err ward_cond_init_monotonic(pthread_cond_t *c);

#endif
