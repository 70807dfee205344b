/* tsan_breaker.c — threads hammering one circuit breaker, built with ThreadSanitizer: the
 * counts must add up exactly and the state changes seen by on_state_change must chain. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ward/breaker.h>
#include <ward/clock.h>
#include <ward/metrics.h>

#include "tsan_check.h"

#define THREADS 4
#define CALLS 100000
#define MIXED_CALLS 50000
#define MAX_SEEN 1000000


static bool never_trip(const struct ward_breaker_counts *c, void *arg)
{
    (void)c;
    (void)arg;
    return false;
}

static void *succeed_many(void *arg)
{
    struct ward_breaker *br = arg;
    struct ward_breaker_ticket t;
    long refused = 0;

    for (int i = 0; i < CALLS; i++) {
        if (ward_breaker_allow(br, &t) == WARD_ERR_OK)
            ward_breaker_done(br, t, WARD_BREAKER_SUCCESS);
        else
            refused++;
    }
    return (void *)refused;
}

/* Every call admitted and counted: requests and successes add up exactly. */
static void all_successes_add_up(void)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br = NULL;
    struct ward_breaker_stats st;
    pthread_t th[THREADS];
    long refused = 0;
    const uint64_t total = (uint64_t)THREADS * CALLS;

    ward_breaker_settings_default(&s);
    s.ready_to_trip = never_trip;
    if (ward_breaker_new(&s, &br) != WARD_ERR_OK) {
        check(false, "new breaker");
        return;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, succeed_many, br);
    for (int i = 0; i < THREADS; i++) {
        void *r;

        pthread_join(th[i], &r);
        refused += (long)r;
    }
    ward_breaker_stats(br, &st);
    check(refused == 0 && st.counts.requests == total && st.counts.total_successes == total &&
              st.counts.consecutive_successes == total && st.counts.total_failures == 0 &&
              st.state == WARD_BREAKER_CLOSED && st.transitions == 0,
          "4 threads x 100000 allow+done: requests and successes add up");
    ward_breaker_free(br);
}

/* The mixed run: what the callback saw, written without a lock of its own, so that
 * ThreadSanitizer reports it if two callbacks ever run at once. */
struct mixed {
    struct ward_breaker *br;
    const struct ward_clock *clock;
    int n;
    enum ward_breaker_state from[MAX_SEEN];
    enum ward_breaker_state to[MAX_SEEN];
    atomic_long open_results;
    atomic_long too_many_results;
};

static void on_change(const char *name, enum ward_breaker_state from, enum ward_breaker_state to,
                      void *arg)
{
    struct mixed *m = arg;
    struct ward_breaker_stats st;

    (void)name;
    if (m->n < MAX_SEEN) {
        m->from[m->n] = from;
        m->to[m->n] = to;
    }
    m->n++;
    ward_breaker_stats(m->br, &st); /* calling back in, under load */
}

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void *mixed_calls(void *arg)
{
    struct mixed *m = arg;
    uint64_t x = (uint64_t)(uintptr_t)&x | 1;

    for (int i = 0; i < MIXED_CALLS; i++) {
        struct ward_breaker_ticket t;
        uint64_t r = next_rand(&x);
        enum ward_err err = ward_breaker_allow(m->br, &t);

        if (r % 4 == 0)
            ward_clock_fake_advance(m->clock, WARD_NS_PER_MS / 4);
        if (err == WARD_ERR_OPEN) {
            atomic_fetch_add(&m->open_results, 1);
        } else if (err == WARD_ERR_TOO_MANY_REQUESTS) {
            atomic_fetch_add(&m->too_many_results, 1);
        } else if (r % 50 != 1) { /* now and then a probe never reports */
            enum ward_breaker_outcome o = (r >> 8) % 10 < 3 ? WARD_BREAKER_FAILURE
                                          : (r >> 8) % 10 < 4 ? WARD_BREAKER_EXCLUDED
                                                               : WARD_BREAKER_SUCCESS;
            ward_breaker_done(m->br, t, o);
        }
    }
    return NULL;
}

static bool legal(enum ward_breaker_state from, enum ward_breaker_state to)
{
    return (from == WARD_BREAKER_CLOSED && to == WARD_BREAKER_OPEN) ||
           (from == WARD_BREAKER_OPEN && to == WARD_BREAKER_HALF_OPEN) ||
           (from == WARD_BREAKER_HALF_OPEN && to != WARD_BREAKER_HALF_OPEN);
}

static double metric(struct ward_metric_family *f, const char *const *labels)
{
    return ward_metric_value(ward_metric_get(f, labels));
}

/* Trips, probes, lost probes and excluded calls from four threads on a moving clock. */
static void mixed_run_chains(void)
{
    static struct mixed m; /* large: not on the stack */
    static const char *const edge_labels[] = {"name", "from", "to"};
    static const char *const reject_labels[] = {"name", "reason"};
    static const char *const state_labels[] = {"name"};
    struct ward_clock *clock = ward_clock_fake_new(0);
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_metric_family *f_edge, *f_reject, *f_state;
    struct ward_breaker_settings s;
    struct ward_breaker_stats st;
    pthread_t th[THREADS];
    bool chain = true;
    double edges;

    ward_breaker_settings_default(&s);
    s.name = "mixed";
    s.max_requests = 3;
    s.timeout_ns = 2 * WARD_NS_PER_MS;
    s.probe_deadline_ns = 3 * WARD_NS_PER_MS;
    s.backoff = 1.5;
    s.max_open_ns = 10 * WARD_NS_PER_MS;
    s.interval_ns = 5 * WARD_NS_PER_MS;
    s.on_state_change = on_change;
    s.arg = &m;
    s.clock = clock;
    m.clock = clock;
    if (clock == NULL || reg == NULL || ward_breaker_new(&s, &m.br) != WARD_ERR_OK ||
        ward_breaker_export(m.br, reg) != WARD_ERR_OK) {
        check(false, "mixed run set-up");
        return;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, mixed_calls, &m);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ward_breaker_stats(m.br, &st);
    for (int i = 0; i < m.n && i < MAX_SEEN; i++) {
        enum ward_breaker_state prev = i == 0 ? WARD_BREAKER_CLOSED : m.to[i - 1];

        chain = chain && m.from[i] == prev && legal(m.from[i], m.to[i]);
    }
    check(st.transitions > 10 && (uint64_t)m.n == st.transitions && m.n < MAX_SEEN && chain &&
              m.to[m.n - 1] == st.state,
          "mixed run: every change seen once, in order, each following the last");
    check(st.rejected_open == (uint64_t)atomic_load(&m.open_results) &&
              st.rejected_too_many == (uint64_t)atomic_load(&m.too_many_results) &&
              st.rejected_open > 0 && st.rejected_too_many > 0,
          "mixed run: rejections by reason add up");
    f_edge = ward_metrics_counter(reg, "ward_breaker_transitions_total",
                                  "Circuit breaker state changes.", 3, edge_labels);
    f_reject = ward_metrics_counter(reg, "ward_breaker_rejections_total",
                                    "Calls a circuit breaker refused, by reason.", 2, reject_labels);
    f_state = ward_metrics_gauge(reg, "ward_breaker_state",
                                 "Circuit breaker state: 0 closed, 1 half-open, 2 open.", 1,
                                 state_labels);
    edges = metric(f_edge, (const char *const[]){"mixed", "closed", "open"}) +
            metric(f_edge, (const char *const[]){"mixed", "open", "half-open"}) +
            metric(f_edge, (const char *const[]){"mixed", "half-open", "open"}) +
            metric(f_edge, (const char *const[]){"mixed", "half-open", "closed"});
    check(edges == (double)st.transitions &&
              metric(f_reject, (const char *const[]){"mixed", "open"}) == (double)st.rejected_open &&
              metric(f_state, (const char *const[]){"mixed"}) == (double)st.state,
          "mixed run: exported metrics match the snapshot");
    ward_breaker_free(m.br);
    ward_metrics_free(reg);
    ward_clock_free(clock);
}

int main(void)
{
    all_successes_add_up();
    mixed_run_chains();
    return tsan_summary();
}
