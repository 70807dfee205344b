/* tsan_budget.c — threads hammering one bulkhead and one retry budget, built with
 * ThreadSanitizer: the cap must hold at every instant and the counts must add up exactly. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include <ward/budget.h>
#include <ward/bulkhead.h>
#include <ward/clock.h>
#include <ward/metrics.h>

#include "tsan_check.h"

#define THREADS 4
#define BULKHEAD_CALLS 100000
#define BUDGET_CALLS 50000
#define SLOTS 2


struct bulkhead_run {
    struct ward_bulkhead *bh;
    struct ward_metrics *reg; /* rendered now and then while the others hammer */
    atomic_long acquired;
    atomic_long rejected;
    atomic_uint most_seen;    /* the largest in_use any holder observed */
};

static void *hammer_bulkhead(void *arg)
{
    struct bulkhead_run *run = arg;
    long acquired = 0;
    long rejected = 0;
    unsigned most = 0;

    for (int i = 0; i < BULKHEAD_CALLS; i++) {
        struct ward_bulkhead_stats st;

        if (ward_bulkhead_acquire(run->bh) != WARD_ERR_OK) {
            rejected++;
            continue;
        }
        acquired++;
        ward_bulkhead_stats(run->bh, &st);
        if (st.in_use > most)
            most = st.in_use;
        ward_bulkhead_release(run->bh);
        if (run->reg != NULL && i % 10000 == 0)
            free(ward_metrics_render(run->reg, NULL));
    }
    atomic_fetch_add(&run->acquired, acquired);
    atomic_fetch_add(&run->rejected, rejected);
    for (unsigned seen = atomic_load(&run->most_seen); most > seen;)
        atomic_compare_exchange_weak(&run->most_seen, &seen, most);
    return NULL;
}

/* 4 threads x 100000 acquire/release on 2 slots, with renders of the exported metrics. */
static void bulkhead_never_passes_its_cap(void)
{
    static const char *const labels[] = {"name"};
    struct ward_bulkhead_settings s;
    struct bulkhead_run run = {0};
    struct ward_bulkhead_stats st;
    pthread_t th[THREADS];
    double exported;

    ward_bulkhead_settings_default(&s);
    s.name = "hammered";
    s.max_concurrent = SLOTS;
    run.reg = ward_metrics_new();
    if (run.reg == NULL || ward_bulkhead_new(&s, &run.bh) != WARD_ERR_OK ||
        ward_bulkhead_export(run.bh, run.reg) != WARD_ERR_OK) {
        check(false, "bulkhead set-up");
        return;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer_bulkhead, &run);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ward_bulkhead_stats(run.bh, &st);
    check(atomic_load(&run.most_seen) <= SLOTS && atomic_load(&run.most_seen) >= 1 &&
              st.in_use == 0,
          "bulkhead of 2, 4 threads x 100000 acquire/release: in_use never above 2, ends at 0");
    free(ward_metrics_render(run.reg, NULL));
    exported = ward_metric_value(ward_metric_get(
        ward_metrics_counter(run.reg, "ward_bulkhead_rejections_total",
                             "Calls refused because the bulkhead was full.", 1, labels),
        (const char *const[]){"hammered"}));
    check(atomic_load(&run.acquired) + atomic_load(&run.rejected) ==
                  (long)THREADS * BULKHEAD_CALLS &&
              st.rejections == (uint64_t)atomic_load(&run.rejected) &&
              exported == (double)st.rejections,
          "bulkhead: acquisitions + rejections add up; stats and the exported counter agree");
    ward_bulkhead_free(run.bh);
    ward_metrics_free(run.reg);
}

struct budget_run {
    struct ward_budget *b;
    struct ward_clock *clock; /* moved forward by the threads themselves when moving */
    bool moving;
    atomic_long retries;
    atomic_long exhausted;
};

static void *hammer_budget(void *arg)
{
    struct budget_run *run = arg;
    long retries = 0;
    long exhausted = 0;

    for (int i = 0; i < BUDGET_CALLS; i++) {
        ward_budget_deposit(run->b);
        if (ward_budget_try_withdraw(run->b) == WARD_ERR_OK)
            retries++;
        else
            exhausted++;
        if (run->moving && i % 100 == 0)
            ward_clock_fake_advance(run->clock, 37 * WARD_NS_PER_MS);
    }
    atomic_fetch_add(&run->retries, retries);
    atomic_fetch_add(&run->exhausted, exhausted);
    return NULL;
}

static double counter_value(struct ward_metrics *reg, const char *name, const char *help)
{
    static const char *const labels[] = {"name"};

    return ward_metric_value(ward_metric_get(ward_metrics_counter(reg, name, help, 1, labels),
                                             (const char *const[]){"hammered"}));
}

/* 4 threads x 50000 deposit + try_withdraw on one budget; on a still clock the bound is
 * exact, on a moving one the window slides under the threads' feet. */
static void budget_adds_up(bool moving)
{
    struct ward_budget_settings s;
    struct budget_run run = {0};
    struct ward_budget_stats st;
    struct ward_metrics *reg = ward_metrics_new();
    pthread_t th[THREADS];
    const long total = (long)THREADS * BUDGET_CALLS;
    bool ok;

    run.clock = ward_clock_fake_new(0);
    run.moving = moving;
    ward_budget_settings_default(&s);
    s.name = "hammered";
    s.clock = run.clock;
    if (reg == NULL || run.clock == NULL || ward_budget_new(&s, &run.b) != WARD_ERR_OK ||
        ward_budget_export(run.b, reg) != WARD_ERR_OK) {
        check(false, "budget set-up");
        return;
    }
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer_budget, &run);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ward_budget_stats(run.b, &st);
    ok = st.requests_total == (uint64_t)total &&
         st.retries_total == (uint64_t)atomic_load(&run.retries) &&
         st.exhausted_total == (uint64_t)atomic_load(&run.exhausted) &&
         st.retries_total + st.exhausted_total == (uint64_t)total &&
         counter_value(reg, "ward_retry_budget_retries_total",
                       "Retries the retry budget allowed.") == (double)st.retries_total &&
         counter_value(reg, "ward_retry_budget_exhausted_total",
                       "Retries refused because the retry budget was exhausted.") ==
             (double)st.exhausted_total;
    if (moving) {
        /* the clock moved 4 x 500 x 37 ms = 74 s: many windows slid by. One bucket width
         * later the last bucket is flushed too, and the exported deposits are exact. */
        ok = ok && st.requests < (uint64_t)total;
        ward_clock_fake_advance(run.clock, WARD_NS_PER_S);
        ward_budget_stats(run.b, &st);
        ok = ok &&
             counter_value(reg, "ward_retry_budget_requests_total",
                           "Requests deposited in the retry budget (added as its window "
                           "slides).") == (double)total;
        check(ok, "budget on a moving clock, 4 threads x 50000 deposit + try_withdraw: "
                  "deposits, retries and refusals add up exactly");
    } else {
        ok = ok && st.requests == (uint64_t)total &&
             st.retries_total == (uint64_t)total * 20 / 100 + 100;
        check(ok, "budget on a still clock, 4 threads x 50000 deposit + try_withdraw: deposits "
                  "add up and retries are exactly 20 % + the floor of 100");
    }
    ward_budget_free(run.b);
    ward_metrics_free(reg);
    ward_clock_free(run.clock);
}

int main(void)
{
    bulkhead_never_passes_its_cap();
    budget_adds_up(false);
    budget_adds_up(true);
    return tsan_summary();
}
