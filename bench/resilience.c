/* resilience.c — ns/op of the hot paths of the breaker (allow + done) and the limiter
 * (allow): one thread and two contending threads, at a fixed (fake) time and on the real
 * clock. Prints a markdown table; medians of several runs. Usage: bench-resilience [ops] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <ward/breaker.h>
#include <ward/clock.h>
#include <ward/limiter.h>

#define RUNS 7

struct job {
    struct ward_breaker *br;
    struct ward_limiter *lim;
    long ops;
    pthread_barrier_t *start;
    double ns_per_op;
    long sink;
};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *run_breaker(void *arg)
{
    struct job *j = arg;
    if (j->start != NULL)
        pthread_barrier_wait(j->start);
    double t0 = now_ns();
    for (long i = 0; i < j->ops; i++) {
        struct ward_breaker_ticket t;
        if (ward_breaker_allow(j->br, &t) == WARD_ERR_OK)
            ward_breaker_done(j->br, t, WARD_BREAKER_SUCCESS);
        else
            j->sink++;
    }
    j->ns_per_op = (now_ns() - t0) / (double)j->ops;
    return NULL;
}

static void *run_limiter(void *arg)
{
    struct job *j = arg;
    if (j->start != NULL)
        pthread_barrier_wait(j->start);
    double t0 = now_ns();
    for (long i = 0; i < j->ops; i++)
        j->sink += ward_limiter_allow(j->lim) == WARD_ERR_OK;
    j->ns_per_op = (now_ns() - t0) / (double)j->ops;
    return NULL;
}

/* One measurement: threads (1 or 2) running fn; returns the mean ns/op per thread. */
static double measure(void *(*fn)(void *), struct ward_breaker *br, struct ward_limiter *lim,
                      int threads, long ops)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    struct job jobs[2] = {{br, lim, ops, &start, 0, 0}, {br, lim, ops, &start, 0, 0}};
    pthread_t tid[2];
    for (int i = 0; i < threads; i++)
        pthread_create(&tid[i], NULL, fn, &jobs[i]);
    double sum = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        sum += jobs[i].ns_per_op;
    }
    pthread_barrier_destroy(&start);
    return sum / threads;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(void *(*fn)(void *), struct ward_breaker *br, struct ward_limiter *lim,
                     int threads, long ops)
{
    double v[RUNS];
    measure(fn, br, lim, threads, ops / 10); /* warm-up */
    for (int i = 0; i < RUNS; i++)
        v[i] = measure(fn, br, lim, threads, ops);
    qsort(v, RUNS, sizeof v[0], cmp);
    return v[RUNS / 2];
}

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 5000000;
    struct ward_clock *fake = ward_clock_fake_new(1000000000);
    if (fake == NULL)
        return 1;
    printf("| operation | clock | threads | ns/op per thread (median of %d) |\n|---|---|---:|---:|\n", RUNS);
    for (int real = 0; real < 2; real++) {
        const struct ward_clock *clock = real ? ward_clock_real() : fake;
        struct ward_breaker_settings bs;
        ward_breaker_settings_default(&bs);
        bs.name = "bench";
        bs.clock = clock;
        struct ward_limiter_settings ls;
        ward_limiter_settings_default(&ls);
        ls.limit = 1.0; /* x/time/rate's BenchmarkAllowN: Every(1s), burst 1 */
        ls.burst = 1;
        ls.clock = clock;
        struct ward_breaker *br = NULL;
        struct ward_limiter *lim = NULL;
        if (ward_breaker_new(&bs, &br) != WARD_ERR_OK || ward_limiter_new(&ls, &lim) != WARD_ERR_OK)
            return 1;
        for (int threads = 1; threads <= 2; threads++) {
            printf("| breaker allow + done | %s | %d | %.1f |\n", real ? "real" : "fixed", threads,
                   median(run_breaker, br, NULL, threads, ops));
            printf("| limiter allow | %s | %d | %.1f |\n", real ? "real" : "fixed", threads,
                   median(run_limiter, NULL, lim, threads, ops));
        }
        ward_breaker_free(br);
        ward_limiter_free(lim);
    }
    ward_clock_free(fake);
    return 0;
}
