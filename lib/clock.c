/* clock.c — the real monotonic clock and fake clocks that tests move by hand. */
#include <ward/clock.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum clock_kind { CLOCK_KIND_REAL, CLOCK_KIND_FAKE };

/* The header hands out const pointers, yet a fake clock must move. A fake clock is
 * always heap-allocated (never a const object) and keeps a plain pointer to itself,
 * so its counter is changed through that pointer: no cast drops const, and no object
 * defined const is ever written. The real clock's self is NULL. */
struct ward_clock {
    enum clock_kind kind;
    struct ward_clock *self;
    _Atomic int64_t ns;
};

static const struct ward_clock real_clock = {.kind = CLOCK_KIND_REAL, .self = NULL, .ns = 0};

/* The mutable fake behind c, or NULL when c is NULL or the real clock. */
static struct ward_clock *as_fake(const struct ward_clock *c)
{
    if (c == NULL || c->kind != CLOCK_KIND_FAKE)
        return NULL;
    return c->self;
}

static int64_t timespec_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * WARD_NS_PER_S + (int64_t)ts->tv_nsec;
}

/* Adds ns to a fake clock, saturating at INT64_MAX so a huge sleep cannot wrap time. */
static void fake_add(struct ward_clock *f, int64_t ns)
{
    int64_t old = atomic_load_explicit(&f->ns, memory_order_relaxed);
    int64_t sum;

    do {
        if (__builtin_add_overflow(old, ns, &sum))
            sum = ns > 0 ? INT64_MAX : INT64_MIN;
    } while (!atomic_compare_exchange_weak_explicit(&f->ns, &old, sum, memory_order_acq_rel,
                                                    memory_order_relaxed));
}

const struct ward_clock *ward_clock_real(void)
{
    return &real_clock;
}

int64_t ward_clock_now(const struct ward_clock *c)
{
    struct ward_clock *f = as_fake(c);
    struct timespec ts;

    if (f != NULL)
        return atomic_load_explicit(&f->ns, memory_order_acquire);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return timespec_ns(&ts);
}

void ward_clock_sleep(const struct ward_clock *c, int64_t ns)
{
    struct ward_clock *f = as_fake(c);
    struct timespec until;
    int64_t deadline;
    int rc;

    if (ns <= 0)
        return;
    if (f != NULL) {
        fake_add(f, ns);
        return;
    }
    /* An absolute deadline keeps repeated EINTRs from stretching the sleep. */
    if (__builtin_add_overflow(ward_clock_now(NULL), ns, &deadline))
        deadline = INT64_MAX;
    until.tv_sec = (time_t)(deadline / WARD_NS_PER_S);
    until.tv_nsec = (long)(deadline % WARD_NS_PER_S);
    do {
        rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL);
    } while (rc == EINTR);
}

struct ward_clock *ward_clock_fake_new(int64_t start_ns)
{
    struct ward_clock *f = malloc(sizeof *f);

    if (f == NULL)
        return NULL;
    f->kind = CLOCK_KIND_FAKE;
    f->self = f;
    atomic_init(&f->ns, start_ns);
    return f;
}

void ward_clock_fake_advance(const struct ward_clock *c, int64_t ns)
{
    struct ward_clock *f = as_fake(c);

    if (f != NULL && ns > 0)
        fake_add(f, ns);
}

void ward_clock_fake_set(const struct ward_clock *c, int64_t ns)
{
    struct ward_clock *f = as_fake(c);

    if (f != NULL)
        atomic_store_explicit(&f->ns, ns, memory_order_release);
}

void ward_clock_free(const struct ward_clock *c)
{
    free(as_fake(c));
}

int64_t ward_clock_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return timespec_ns(&ts);
}

void ward_clock_rfc3339(int64_t wall_ns, char *buf, size_t size)
{
    time_t secs = (time_t)(wall_ns / WARD_NS_PER_S);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(wall_ns % WARD_NS_PER_S / WARD_NS_PER_MS));
}
