/* tsan_limiter.c — threads hammering one limiter and one keyed limiter; counts must add up. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/keyed_limiter.h>
#include <ward/limiter.h>
#include <ward/metrics.h>

#include "tsan_check.h"

#define NTHREADS 4
#define CALLS 100000
#define NKEYS 64


struct worker {
    pthread_t th;
    int id;
    struct ward_limiter *l;
    struct ward_keyed_limiter *kl;
    const struct ward_clock *clock;
    _Atomic bool *stop;
    long admitted, rejected, full, calls;
};

static void *allow_many(void *p)
{
    struct worker *w = p;

    for (int i = 0; i < CALLS; i++) {
        if (ward_limiter_allow(w->l) == WARD_ERR_OK)
            w->admitted++;
        else
            w->rejected++;
    }
    return NULL;
}

/* Reserves and cancels half of what it reserves while others allow, set limits and read. */
static void *mixed(void *p)
{
    struct worker *w = p;
    struct ward_limiter_reservation r;
    struct ward_limiter_stats st;

    for (int i = 0; i < CALLS / 10; i++) {
        if (w->id == 0 && i % 100 == 0) {
            if (ward_limiter_set_burst(w->l, 50 + i % 7) != WARD_ERR_OK)
                w->rejected += 1000000; /* never: makes the total check fail */
            ward_limiter_stats(w->l, &st);
        }
        if (ward_limiter_reserve_n(w->l, 1, &r) == WARD_ERR_OK) {
            w->admitted++;
            if (i % 2)
                ward_limiter_cancel(w->l, &r);
        } else {
            w->rejected++;
        }
        if (ward_limiter_allow_n(w->l, 2) == WARD_ERR_OK)
            w->admitted++;
        else
            w->rejected++;
        if (w->id == 1)
            ward_clock_fake_advance(w->clock, 1000);
    }
    return NULL;
}

/* Each thread walks the same keys in its own order. */
static void *keyed_overlap(void *p)
{
    struct worker *w = p;
    char key[16];

    for (int i = 0; i < CALLS; i++) {
        int k = (i * (2 * w->id + 1) + w->id * 17) % NKEYS;
        enum ward_err err;

        snprintf(key, sizeof key, "client-%d", k);
        err = ward_keyed_limiter_allow(w->kl, key, 1, NULL);
        if (err == WARD_ERR_OK)
            w->admitted++;
        else if (err == WARD_ERR_RATE_LIMITED)
            w->rejected++;
        else
            w->full++;
    }
    return NULL;
}

/* New keys all the time against a small table while the clock moves: sweeps race calls. */
static void *keyed_churn(void *p)
{
    struct worker *w = p;
    char key[32];

    for (int i = 0; i < CALLS / 4; i++) {
        enum ward_err err;

        snprintf(key, sizeof key, "t%d-%d", w->id, i % 500);
        err = ward_keyed_limiter_allow(w->kl, key, 1, NULL);
        w->calls++;
        if (err == WARD_ERR_OK)
            w->admitted++;
        else if (err == WARD_ERR_RATE_LIMITED)
            w->rejected++;
        else if (err == WARD_ERR_FULL)
            w->full++;
        if (i % 64 == 0)
            ward_clock_fake_advance(w->clock, 5 * WARD_NS_PER_MS);
        if (w->id == 0 && i % 1000 == 0)
            (void)ward_keyed_limiter_sweep(w->kl);
    }
    return NULL;
}

static void run(struct worker *w, void *(*fn)(void *))
{
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&w[i].th, NULL, fn, &w[i]);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(w[i].th, NULL);
}

static void setup(struct worker *w, struct ward_limiter *l, struct ward_keyed_limiter *kl,
                  const struct ward_clock *c)
{
    for (int i = 0; i < NTHREADS; i++)
        w[i] = (struct worker){.id = i, .l = l, .kl = kl, .clock = c};
}

static void limiter_checks(struct ward_clock *c)
{
    struct ward_limiter_settings s;
    struct ward_limiter_stats st;
    struct ward_limiter *l = NULL;
    struct worker w[NTHREADS];
    long admitted = 0, rejected = 0;

    ward_limiter_settings_default(&s);
    s.limit = 0;
    s.burst = 250000;
    s.clock = c;
    if (ward_limiter_new(&s, &l) != WARD_ERR_OK) {
        check(false, "limiter created");
        return;
    }
    setup(w, l, NULL, c);
    run(w, allow_many);
    for (int i = 0; i < NTHREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
    }
    ward_limiter_stats(l, &st);
    check(admitted == 250000 && rejected == NTHREADS * CALLS - 250000 &&
              st.admitted == 250000 && st.rejected == (uint64_t)rejected,
          "4 threads x 100000 allow at rate 0, burst 250000: exactly 250000 admitted");
    ward_limiter_free(l);

    s.limit = 1000;
    s.burst = 50;
    if (ward_limiter_new(&s, &l) != WARD_ERR_OK) {
        check(false, "limiter created");
        return;
    }
    setup(w, l, NULL, c);
    run(w, mixed);
    admitted = rejected = 0;
    for (int i = 0; i < NTHREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
    }
    ward_limiter_stats(l, &st);
    check(st.admitted == (uint64_t)admitted && st.rejected == (uint64_t)rejected &&
              admitted + rejected == 2L * NTHREADS * (CALLS / 10),
          "reserve, cancel, allow_n and set_burst from 4 threads: every call counted once");
    ward_limiter_free(l);
}

static void keyed_checks(struct ward_clock *c)
{
    struct ward_keyed_limiter_settings s;
    struct ward_keyed_limiter_stats st;
    struct ward_keyed_limiter *kl = NULL;
    struct ward_metrics *reg = ward_metrics_new();
    struct worker w[NTHREADS];
    long admitted = 0, rejected = 0, full = 0, calls = 0;
    char gauge[96];
    char *text;

    ward_keyed_limiter_settings_default(&s);
    s.limit = 0;
    s.burst = 100;
    s.clock = c;
    if (reg == NULL || ward_keyed_limiter_new(&s, &kl) != WARD_ERR_OK ||
        ward_keyed_limiter_export(kl, reg) != WARD_ERR_OK) {
        check(false, "keyed limiter created");
        ward_metrics_free(reg);
        return;
    }
    setup(w, NULL, kl, c);
    run(w, keyed_overlap);
    for (int i = 0; i < NTHREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
        full += w[i].full;
    }
    ward_keyed_limiter_stats(kl, &st);
    check(admitted == NKEYS * 100 && rejected == NTHREADS * CALLS - NKEYS * 100 && full == 0 &&
              st.keys == NKEYS && st.admitted == (uint64_t)admitted,
          "4 threads on 64 overlapping keys, burst 100 each: exactly 6400 admitted");
    ward_keyed_limiter_free(kl);

    s.limit = 1;
    s.burst = 2;
    s.max_keys = 300;
    if (ward_keyed_limiter_new(&s, &kl) != WARD_ERR_OK ||
        ward_keyed_limiter_export(kl, reg) != WARD_ERR_OK) {
        check(false, "keyed limiter created");
        ward_metrics_free(reg);
        return;
    }
    setup(w, NULL, kl, c);
    run(w, keyed_churn);
    admitted = rejected = full = 0;
    for (int i = 0; i < NTHREADS; i++) {
        admitted += w[i].admitted;
        rejected += w[i].rejected;
        full += w[i].full;
        calls += w[i].calls;
    }
    ward_keyed_limiter_stats(kl, &st);
    snprintf(gauge, sizeof gauge, "ward_keyed_limiter_keys{name=\"keyed\"} %zu\n", st.keys);
    text = ward_metrics_render(reg, NULL);
    check(st.keys <= 300 && admitted + rejected + full == calls &&
              st.admitted == (uint64_t)admitted && st.limited == (uint64_t)rejected &&
              st.full == (uint64_t)full && text != NULL && strstr(text, gauge) != NULL,
          "4 threads churning keys over a 300-key table with sweeps: all counted, cap and "
          "keys gauge exact");
    free(text);
    ward_keyed_limiter_free(kl);
    ward_metrics_free(reg);
}

int main(void)
{
    struct ward_clock *c = ward_clock_fake_new(WARD_NS_PER_S);

    if (c == NULL)
        return 1;
    limiter_checks(c);
    keyed_checks(c);
    ward_clock_free(c);
    return tsan_summary();
}
