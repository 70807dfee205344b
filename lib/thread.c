/* thread.c — helper threads with every signal blocked; monotonic condition variables. */
#include <signal.h>
#include <stdbool.h>
#include <time.h>

#include <ward/thread.h>

enum ward_err ward_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc == 0 ? WARD_ERR_OK : WARD_ERR_SYSTEM;
}

enum ward_err ward_cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return WARD_ERR_SYSTEM;
    bool ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
              pthread_cond_init(c, &attr) == 0;
    pthread_condattr_destroy(&attr);
    return ok ? WARD_ERR_OK : WARD_ERR_SYSTEM;
}
