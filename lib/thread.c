/* thread.c — helper threads with every signal blocked. */
#include <signal.h>

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
