/* test_gw_timer.c — unit tests of the gateway engine's timer heap: order, re-arming,
 * cancelling from anywhere in the heap, and timers that arm or cancel others as they run. */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "gateway/engine.h"

#define N 1000

static int64_t fired[N * 2];
static size_t nfired;

static void record(struct gw_timer *t)
{
    fired[nfired++] = t->at;
}

static void reset(void)
{
    nfired = 0;
}

TestSuite(gw_timer, .init = reset);

Test(gw_timer, run_fires_what_is_due_earliest_first_and_keeps_the_rest)
{
    struct gw_timers ts = {0};
    static struct gw_timer t[N];
    srand(7);
    for (size_t i = 0; i < N; i++) {
        t[i].fn = record;
        cr_assert(gw_timers_set(&ts, &t[i], rand() % 100000));
    }
    cr_assert_eq(ts.n, N);
    gw_timers_run(&ts, 49999);
    for (size_t i = 1; i < nfired; i++)
        cr_assert_leq(fired[i - 1], fired[i], "out of order at %zu", i);
    for (size_t i = 0; i < nfired; i++)
        cr_assert_lt(fired[i], 50000);
    cr_assert_eq(nfired + ts.n, N);
    cr_assert_geq(gw_timers_next(&ts), 50000);
    gw_timers_run(&ts, INT64_MAX - 1);
    cr_assert_eq(nfired, N);
    cr_assert_eq(gw_timers_next(&ts), INT64_MAX);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(t[i].slot, 0, "timer %zu still armed", i);
    free(ts.heap);
}

Test(gw_timer, cancel_and_rearm_anywhere_keep_the_heap_in_order)
{
    struct gw_timers ts = {0};
    static struct gw_timer t[N];
    srand(11);
    for (size_t i = 0; i < N; i++) {
        t[i].fn = record;
        cr_assert(gw_timers_set(&ts, &t[i], rand() % 100000));
    }
    for (size_t i = 0; i < N; i += 3)
        gw_timers_cancel(&ts, &t[i]);
    for (size_t i = 1; i < N; i += 3)
        cr_assert(gw_timers_set(&ts, &t[i], rand() % 100000)); /* re-armed: moved, not doubled */
    gw_timers_cancel(&ts, &t[0]); /* twice: a no-op */
    size_t expect = N - (N + 2) / 3;
    cr_assert_eq(ts.n, expect);
    gw_timers_run(&ts, INT64_MAX - 1);
    cr_assert_eq(nfired, expect);
    for (size_t i = 1; i < nfired; i++)
        cr_assert_leq(fired[i - 1], fired[i]);
    free(ts.heap);
}

static struct gw_timers chain;
static struct gw_timer a, b, c;

static void a_fn(struct gw_timer *t)
{
    record(t);
    gw_timers_cancel(&chain, &b);        /* due too, but cancelled by an earlier one */
    cr_assert(gw_timers_set(&chain, &c, 5)); /* armed in the past: runs in this same run */
}

Test(gw_timer, a_running_timer_may_cancel_and_arm_others)
{
    a.fn = a_fn;
    b.fn = record;
    c.fn = record;
    cr_assert(gw_timers_set(&chain, &a, 10));
    cr_assert(gw_timers_set(&chain, &b, 20));
    gw_timers_run(&chain, 30);
    cr_assert_eq(nfired, 2);
    cr_assert_eq(fired[0], 10);
    cr_assert_eq(fired[1], 5);
    cr_assert_eq(b.slot, 0);
    cr_assert_eq(gw_timers_next(&chain), INT64_MAX);
    free(chain.heap);
}
