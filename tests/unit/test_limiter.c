/* test_limiter.c — unit tests of the token-bucket rate limiter on a fake clock. */
#include <criterion/criterion.h>

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ward/clock.h>
#include <ward/limiter.h>
#include <ward/metrics.h>

/* Times are written as multiples of D after T0, as in x/time/rate's own tests. */
#define T0 (1000 * WARD_NS_PER_S)
#define D (100 * WARD_NS_PER_MS)
#define AT(k) (T0 + (int64_t)(k) * D)

struct fx {
    struct ward_clock *clock;
    struct ward_limiter *l;
};

static struct fx make(double limit, int64_t burst)
{
    struct ward_limiter_settings s;
    struct fx f;

    f.clock = ward_clock_fake_new(T0);
    cr_assert_not_null(f.clock);
    ward_limiter_settings_default(&s);
    s.limit = limit;
    s.burst = burst;
    s.clock = f.clock;
    cr_assert_eq(ward_limiter_new(&s, &f.l), WARD_ERR_OK);
    return f;
}

static void done(struct fx *f)
{
    ward_limiter_free(f->l);
    ward_clock_free(f->clock);
}

struct allow_step {
    int t; /* in D after T0 */
    int64_t n;
    enum ward_err want;
};

static void run_allows(struct fx *f, const struct allow_step *steps, size_t nsteps)
{
    for (size_t i = 0; i < nsteps; i++) {
        ward_clock_fake_set(f->clock, AT(steps[i].t));
        cr_assert_eq(ward_limiter_allow_n(f->l, steps[i].n), steps[i].want,
                     "step %zu: allow_n(t%d, %lld)", i, steps[i].t, (long long)steps[i].n);
    }
}

/* Reserves n at t (in D) and checks ok and the time to act (in D, exactly). */
static struct ward_limiter_reservation reserve(struct fx *f, int t, int64_t n, int act,
                                               enum ward_err want)
{
    struct ward_limiter_reservation r;

    ward_clock_fake_set(f->clock, AT(t));
    cr_assert_eq(ward_limiter_reserve_n(f->l, n, &r), want, "reserve_n(t%d, %lld)", t,
                 (long long)n);
    cr_assert_eq(r.ok, want == WARD_ERR_OK);
    if (r.ok) {
        cr_assert_eq(r.time_to_act_ns, AT(act), "reserve_n(t%d, %lld) acts at %+lld ns from t%d",
                     t, (long long)n, (long long)(r.time_to_act_ns - AT(act)), act);
        cr_assert_eq(r.delay_ns, AT(act) - AT(t));
        cr_assert_eq(r.tokens, n);
    } else {
        cr_assert_eq(r.delay_ns, WARD_LIMITER_DELAY_INF);
    }
    return r;
}

static void cancel_at(struct fx *f, int t, struct ward_limiter_reservation *r)
{
    ward_clock_fake_set(f->clock, AT(t));
    ward_limiter_cancel(f->l, r);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define OK WARD_ERR_OK
#define LIMITED WARD_ERR_RATE_LIMITED

Test(limiter, burst_1_admits_one_event_per_interval)
{
    struct fx f = make(10, 1);
    static const struct allow_step steps[] = {
        {0, 1, OK},  {0, 1, LIMITED}, {0, 1, LIMITED}, {1, 1, OK},
        {1, 1, LIMITED}, {1, 1, LIMITED}, {2, 2, WARD_ERR_BURST}, {2, 1, OK}, {2, 1, LIMITED},
    };

    run_allows(&f, steps, N(steps));
    done(&f);
}

Test(limiter, burst_3_spends_and_refills_at_the_rate)
{
    struct fx f = make(10, 3);
    static const struct allow_step steps[] = {
        {0, 2, OK}, {0, 2, LIMITED}, {0, 1, OK}, {0, 1, LIMITED}, {1, 4, WARD_ERR_BURST},
        {2, 1, OK}, {3, 1, OK},      {4, 1, OK}, {4, 1, OK},      {4, 1, LIMITED},
        {4, 1, LIMITED}, {9, 3, OK}, {9, 0, OK},
    };

    run_allows(&f, steps, N(steps));
    done(&f);
}

Test(limiter, clock_going_back_counts_as_no_time_passed)
{
    struct fx f = make(10, 3);
    static const struct allow_step steps[] = {
        {1, 1, OK}, {0, 1, OK}, {0, 1, OK}, {0, 1, LIMITED}, {0, 1, LIMITED},
        {1, 1, OK}, {1, 1, LIMITED}, {1, 1, LIMITED}, {2, 1, OK}, {2, 1, LIMITED},
    };

    run_allows(&f, steps, N(steps));
    done(&f);
}

Test(limiter, starts_full_even_for_a_rate_below_one_per_second)
{
    struct fx f = make(0.7692307692307693, 1);

    cr_assert_eq(ward_limiter_allow(f.l), OK);
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    done(&f);
}

Test(limiter, waits_are_truncated_to_the_nanosecond_as_in_x_time_rate)
{
    struct fx f = make(3, 1);
    struct ward_limiter_reservation r;

    cr_assert_eq(ward_limiter_allow(f.l), OK);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 1, &r), OK);
    cr_assert_eq(r.delay_ns, 333333333, "1/3 s truncated, got %lld", (long long)r.delay_ns);
    ward_limiter_cancel(f.l, &r);
    cr_assert_eq(ward_limiter_tokens(f.l), 0.0);
    /* 333333332 ns earn 0.999999996 tokens: the rest takes 1.3 ns, truncated to 1 */
    ward_clock_fake_advance(f.clock, 333333332);
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    /* 333333333 ns earn 0.999999999: the rest takes 0.3 ns, truncated to 0, so it passes */
    ward_clock_fake_advance(f.clock, 1);
    cr_assert_eq(ward_limiter_allow(f.l), OK);
    cr_assert_float_eq(ward_limiter_tokens(f.l), -1e-9, 1e-15);
    done(&f);
}

Test(limiter, long_durations_keep_nanosecond_precision)
{
    struct fx f = make(1e-9, 1); /* one token per ~31.7 years */

    cr_assert_eq(ward_limiter_allow(f.l), OK);
    ward_clock_fake_advance(f.clock, WARD_NS_PER_S * 500000000 + 1);
    cr_assert_float_eq(ward_limiter_tokens(f.l), 0.5, 1e-12);
    done(&f);
}

struct sim_arg {
    struct ward_limiter *l;
    int ok;
};

static void *one_allow(void *p)
{
    struct sim_arg *a = p;

    a->ok = ward_limiter_allow(a->l) == OK;
    return NULL;
}

Test(limiter, simultaneous_requests_get_exactly_the_burst)
{
    struct fx f = make(1, 5);
    pthread_t th[15];
    struct sim_arg a[15];
    int admitted = 0;

    for (int i = 0; i < 15; i++) {
        a[i].l = f.l;
        cr_assert_eq(pthread_create(&th[i], NULL, one_allow, &a[i]), 0);
    }
    for (int i = 0; i < 15; i++) {
        pthread_join(th[i], NULL);
        admitted += a[i].ok;
    }
    cr_assert_eq(admitted, 5);
    done(&f);
}

Test(limiter, long_running_qps_stays_within_burst_plus_rate_times_elapsed)
{
    struct fx f = make(100, 100);
    int64_t start = ward_clock_now(f.clock);
    int admitted = 0;
    double ideal;

    /* one request every 2 ms for 5 s: 500 offered per second against 100 allowed */
    for (int i = 0; i < 2500; i++) {
        admitted += ward_limiter_allow(f.l) == OK;
        ward_clock_fake_advance(f.clock, 2 * WARD_NS_PER_MS);
    }
    ideal = 100 + 100.0 * (double)(ward_clock_now(f.clock) - start) / 1e9;
    cr_assert_leq(admitted, (int)(ideal + 1));
    cr_assert_geq(admitted, (int)(0.999 * ideal));
    /* 124 pass while the first burst lasts, then one per 10 ms up to t = 4.998 s */
    cr_assert_eq(admitted, 599);
    done(&f);
}

Test(limiter, reserve_queues_events_into_the_future)
{
    struct fx f = make(10, 2);

    reserve(&f, 0, 2, 0, OK);
    reserve(&f, 0, 2, 2, OK);
    reserve(&f, 3, 2, 4, OK);
    done(&f);
}

Test(limiter, allow_refuses_while_reservations_are_owed)
{
    struct fx f = make(10, 2);

    reserve(&f, 0, 3, 0, WARD_ERR_BURST);
    reserve(&f, 0, 2, 0, OK);
    run_allows(&f, (const struct allow_step[]){{1, 2, LIMITED}}, 1);
    reserve(&f, 1, 2, 2, OK);
    run_allows(&f, (const struct allow_step[]){{1, 1, LIMITED}, {1, 0, LIMITED}}, 2);
    run_allows(&f, (const struct allow_step[]){{3, 1, OK}}, 1);
    done(&f);
}

Test(limiter, cancel_of_a_refused_reservation_gives_nothing)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 3, 0, WARD_ERR_BURST);
    cancel_at(&f, 0, &r);
    reserve(&f, 0, 2, 2, OK);
    done(&f);
}

Test(limiter, cancel_of_the_latest_reservation_gives_all_its_tokens_back)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 2, 2, OK);
    cancel_at(&f, 1, &r);
    cr_assert_not(r.ok, "a cancelled reservation is spent");
    reserve(&f, 1, 2, 2, OK);
    done(&f);
}

Test(limiter, cancel_after_the_time_to_act_gives_nothing)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 2, 2, OK);
    cancel_at(&f, 3, &r);
    reserve(&f, 3, 2, 4, OK);
    done(&f);
}

Test(limiter, cancel_gives_nothing_when_later_reservations_counted_on_every_token)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 1, 1, OK);
    reserve(&f, 0, 1, 2, OK);
    cancel_at(&f, 0, &r);
    reserve(&f, 0, 1, 3, OK);
    done(&f);
}

Test(limiter, cancel_gives_back_only_the_tokens_later_reservations_left)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 2, 2, OK);
    reserve(&f, 0, 1, 3, OK);
    cancel_at(&f, 2, &r); /* 1 of its 2 tokens back */
    reserve(&f, 2, 2, 4, OK);
    done(&f);
}

Test(limiter, cancels_in_any_order_restore_as_if_the_latest_never_happened)
{
    struct fx f = make(10, 4);
    struct ward_limiter_reservation a, c;

    reserve(&f, 0, 4, 0, OK);
    a = reserve(&f, 0, 3, 3, OK);
    reserve(&f, 0, 1, 4, OK);
    c = reserve(&f, 0, 1, 5, OK);
    cancel_at(&f, 1, &c); /* 1 back */
    cancel_at(&f, 1, &a); /* 2 back, as if c was never made */
    reserve(&f, 1, 3, 5, OK);
    done(&f);
}

Test(limiter, cancel_twice_restores_once)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 2, 2, OK);
    cancel_at(&f, 0, &r);
    cancel_at(&f, 0, &r);
    cr_assert_eq(ward_limiter_tokens(f.l), 0.0);
    done(&f);
}

Test(limiter, reserving_back_in_time_may_exceed_the_rate_as_in_x_time_rate)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 1, 2, 1, OK);
    reserve(&f, 0, 1, 1, OK);
    reserve(&f, 2, 2, 3, OK);
    done(&f);

    f = make(10, 2);
    reserve(&f, 1, 2, 1, OK);
    r = reserve(&f, 1, 2, 3, OK);
    reserve(&f, 1, 1, 4, OK);
    cancel_at(&f, 0, &r); /* 1 token back */
    reserve(&f, 1, 2, 4, OK);
    done(&f);
}

Test(limiter, set_limit_keeps_reservations_and_refills_at_the_new_rate)
{
    struct fx f = make(5, 2);

    reserve(&f, 0, 2, 0, OK);
    reserve(&f, 0, 2, 4, OK);
    ward_clock_fake_set(f.clock, AT(2));
    cr_assert_eq(ward_limiter_set_limit(f.l, 10), OK);
    reserve(&f, 2, 1, 4, OK);
    done(&f);
}

Test(limiter, set_burst_keeps_reservations_and_lets_larger_requests_in)
{
    struct fx f = make(5, 2);

    reserve(&f, 0, 2, 0, OK);
    reserve(&f, 0, 2, 4, OK);
    ward_clock_fake_set(f.clock, AT(3));
    cr_assert_eq(ward_limiter_set_burst(f.l, 4), OK);
    reserve(&f, 0, 4, 9, OK);
    done(&f);
}

Test(limiter, cancel_after_set_limit_uses_the_limit_of_the_reservation)
{
    struct fx f = make(5, 2);
    struct ward_limiter_reservation r;

    reserve(&f, 0, 2, 0, OK);
    r = reserve(&f, 0, 2, 4, OK);
    ward_clock_fake_set(f.clock, AT(2));
    cr_assert_eq(ward_limiter_set_limit(f.l, 10), OK);
    cancel_at(&f, 2, &r); /* 2 tokens back */
    reserve(&f, 2, 2, 3, OK);
    done(&f);
}

Test(limiter, set_limit_first_adds_the_tokens_earned_at_the_old_rate)
{
    struct fx f = make(10, 10);

    cr_assert_eq(ward_limiter_allow_n(f.l, 10), OK);
    ward_clock_fake_set(f.clock, AT(5)); /* 0.5 s at 10/s: 5 tokens */
    cr_assert_eq(ward_limiter_set_limit(f.l, 1), OK);
    cr_assert_eq(ward_limiter_tokens(f.l), 5.0);
    ward_clock_fake_set(f.clock, AT(15)); /* 1 s at 1/s */
    cr_assert_eq(ward_limiter_tokens(f.l), 6.0);
    cr_assert_eq(ward_limiter_limit(f.l), 1.0);
    done(&f);
}

Test(limiter, set_burst_smaller_drops_the_tokens_above_it)
{
    struct fx f = make(10, 10);

    cr_assert_eq(ward_limiter_set_burst(f.l, 3), OK);
    cr_assert_eq(ward_limiter_burst(f.l), 3);
    cr_assert_eq(ward_limiter_tokens(f.l), 3.0);
    cr_assert_eq(ward_limiter_allow_n(f.l, 3), OK);
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    cr_assert_eq(ward_limiter_allow_n(f.l, 4), WARD_ERR_BURST);
    done(&f);
}

Test(limiter, wait_fails_at_once_or_sleeps_exactly_the_delay)
{
    struct fx f = make(10, 3);

    cr_assert_eq(ward_limiter_wait_n(f.l, 1, AT(0)), WARD_ERR_DEADLINE, "deadline already here");
    cr_assert_eq(ward_limiter_wait_n(f.l, 4, WARD_LIMITER_NO_DEADLINE), WARD_ERR_BURST);
    cr_assert_eq(ward_limiter_wait_n(f.l, 2, WARD_LIMITER_NO_DEADLINE), OK);
    cr_assert_eq(ward_clock_now(f.clock), AT(0), "tokens were there: no wait");
    cr_assert_eq(ward_limiter_wait_n(f.l, 3, WARD_LIMITER_NO_DEADLINE), OK);
    cr_assert_eq(ward_clock_now(f.clock), AT(2), "2 tokens short at 10/s: 200 ms");
    cr_assert_eq(ward_limiter_wait_n(f.l, -1, WARD_LIMITER_NO_DEADLINE), WARD_ERR_INVAL);
    done(&f);
}

Test(limiter, wait_past_the_deadline_fails_at_once_and_takes_nothing)
{
    struct fx f = make(10, 3);

    cr_assert_eq(ward_limiter_wait_n(f.l, 2, AT(1)), OK);
    cr_assert_eq(ward_limiter_wait_n(f.l, 3, AT(1)), WARD_ERR_DEADLINE);
    cr_assert_eq(ward_clock_now(f.clock), AT(0));
    cr_assert_eq(ward_limiter_tokens(f.l), 1.0);
    cr_assert_eq(ward_limiter_wait_n(f.l, 2, AT(1)), OK, "a wait of exactly the deadline is ok");
    cr_assert_eq(ward_clock_now(f.clock), AT(1));
    done(&f);
}

Test(limiter, infinite_rate_admits_everything_even_beyond_the_burst)
{
    struct fx f = make(WARD_LIMIT_INF, 0);
    struct ward_limiter_reservation r;

    cr_assert_eq(ward_limiter_wait_n(f.l, 3, WARD_LIMITER_NO_DEADLINE), OK);
    cr_assert_eq(ward_limiter_allow_n(f.l, 1000000), OK);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 7, &r), OK);
    cr_assert(r.ok);
    cr_assert_eq(r.delay_ns, 0);
    cr_assert_eq(r.tokens, 0, "nothing is taken at an infinite rate");
    ward_limiter_cancel(f.l, &r);
    cr_assert_eq(ward_clock_now(f.clock), T0);
    cr_assert_eq(ward_limiter_set_limit(f.l, (double)INFINITY), OK);
    cr_assert_eq(ward_limiter_limit(f.l), WARD_LIMIT_INF);
    cr_assert_eq(ward_limiter_set_limit(f.l, 5), WARD_ERR_INVAL, "burst 0 with a finite rate");
    done(&f);
}

Test(limiter, zero_rate_allows_exactly_the_burst_ever)
{
    struct fx f = make(0, 3);
    struct ward_limiter_reservation r;

    cr_assert_eq(ward_limiter_allow(f.l), OK);
    cr_assert_eq(ward_limiter_allow_n(f.l, 2), OK);
    ward_clock_fake_advance(f.clock, 365 * 24 * 3600 * WARD_NS_PER_S);
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 1, &r), LIMITED, "the tokens never come");
    cr_assert_eq(ward_limiter_wait_n(f.l, 1, WARD_LIMITER_NO_DEADLINE), LIMITED);
    cr_assert_eq(ward_limiter_burst(f.l), 3, "unlike x/time/rate, the burst stays");
    cr_assert_eq(ward_clock_now(f.clock), T0 + 365 * 24 * 3600 * WARD_NS_PER_S);
    done(&f);

    f = make(0, 1);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 1, &r), OK);
    cr_assert_eq(r.delay_ns, 0);
    ward_limiter_cancel(f.l, &r);
    cr_assert_eq(ward_limiter_allow(f.l), OK, "a cancel at once gives the token back");
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    done(&f);

    f = make(0, 0);
    cr_assert_eq(ward_limiter_allow(f.l), WARD_ERR_BURST, "rate 0 and burst 0 admit nothing");
    cr_assert_eq(ward_limiter_allow_n(f.l, 0), OK);
    done(&f);
}

Test(limiter, construction_refuses_burst_0_with_a_finite_rate_and_bad_values)
{
    struct ward_limiter_settings s;
    struct ward_limiter *l = (struct ward_limiter *)&s;
    char long_name[WARD_LIMITER_NAME_MAX + 2];

    ward_limiter_settings_default(&s);
    cr_assert_str_eq(s.name, "limiter");
    cr_assert_eq(s.limit, 100.0);
    cr_assert_eq(s.burst, 100);
    s.burst = 0;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    cr_assert_null(l);
    s.burst = 1;
    s.limit = -1;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    s.limit = (double)NAN;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    s.limit = 1;
    s.burst = -1;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    s.burst = WARD_LIMITER_BURST_MAX + 1;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    s.burst = 1;
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    s.name = long_name;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    s.name = NULL;
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_new(NULL, &l), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_new(&s, NULL), WARD_ERR_INVAL);
    s.name = "real";
    cr_assert_eq(ward_limiter_new(&s, &l), WARD_ERR_OK, "NULL clock: the real one");
    cr_assert_eq(ward_limiter_allow(l), OK);
    cr_assert_eq(ward_limiter_set_burst(l, 0), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_set_limit(l, -0.5), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_burst(l), 1);
    ward_limiter_free(l);
    ward_limiter_free(NULL);
}

Test(limiter, negative_n_is_refused)
{
    struct fx f = make(10, 2);
    struct ward_limiter_reservation r;

    cr_assert_eq(ward_limiter_allow_n(f.l, -1), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_reserve_n(f.l, -1, &r), WARD_ERR_INVAL);
    cr_assert_not(r.ok);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 1, NULL), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_tokens(f.l), 2.0);
    done(&f);
}

Test(limiter, every_converts_an_interval_to_a_rate)
{
    cr_assert_eq(ward_limiter_every(0), WARD_LIMIT_INF);
    cr_assert_eq(ward_limiter_every(-1), WARD_LIMIT_INF);
    cr_assert_float_eq(ward_limiter_every(100 * WARD_NS_PER_MS), 10.0, 1e-12);
    cr_assert_float_eq(ward_limiter_every(2 * WARD_NS_PER_S), 0.5, 1e-12);
    cr_assert_float_eq(ward_limiter_every(1), 1e9, 1e-3);
}

Test(limiter, reservation_delay_counts_down_to_zero)
{
    struct fx f = make(10, 1);
    struct ward_limiter_reservation r;

    cr_assert_eq(ward_limiter_allow(f.l), OK);
    cr_assert_eq(ward_limiter_reserve_n(f.l, 1, &r), OK);
    cr_assert_eq(ward_limiter_reservation_delay(&r, AT(0)), D);
    cr_assert_eq(ward_limiter_reservation_delay(&r, AT(0) + D / 4), D - D / 4);
    cr_assert_eq(ward_limiter_reservation_delay(&r, AT(5)), 0);
    ward_limiter_cancel(f.l, &r);
    cr_assert_eq(ward_limiter_reservation_delay(&r, AT(0)), WARD_LIMITER_DELAY_INF);
    cr_assert_eq(ward_limiter_reservation_delay(NULL, AT(0)), WARD_LIMITER_DELAY_INF);
    done(&f);
}

Test(limiter, stats_and_metrics_count_rejections_only)
{
    struct fx f = make(10, 2);
    struct ward_metrics *reg = ward_metrics_new();
    struct ward_limiter_stats st;
    char *text;

    cr_assert_not_null(reg);
    cr_assert_eq(ward_limiter_export(f.l, reg), OK);
    cr_assert_eq(ward_limiter_export(NULL, reg), WARD_ERR_INVAL);
    cr_assert_eq(ward_limiter_allow_n(f.l, 2), OK);
    cr_assert_eq(ward_limiter_allow(f.l), LIMITED);
    cr_assert_eq(ward_limiter_allow_n(f.l, 3), WARD_ERR_BURST);
    cr_assert_eq(ward_limiter_wait_n(f.l, 1, AT(0) + 1), WARD_ERR_DEADLINE);
    cr_assert_eq(ward_limiter_wait_n(f.l, 1, AT(1)), OK);
    ward_limiter_stats(f.l, &st);
    cr_assert_eq(st.admitted, 2);
    cr_assert_eq(st.rejected, 3);
    cr_assert_eq(st.limit, 10.0);
    cr_assert_eq(st.burst, 2);
    cr_assert_eq(st.tokens, 0.0);
    text = ward_metrics_render(reg, NULL);
    cr_assert_not_null(text);
    cr_assert_not_null(strstr(text, "# TYPE ward_limiter_rejections_total counter\n"), "%s", text);
    cr_assert_not_null(strstr(text, "ward_limiter_rejections_total{name=\"limiter\"} 3\n"), "%s",
                       text);
    free(text);
    done(&f);
    ward_metrics_free(reg);
}

/* xorshift64*: a reproducible schedule per seed */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

Test(limiter, never_admits_more_than_burst_plus_rate_times_elapsed)
{
    static const double rates[] = {0, 0.5, 3, 10, 1000, 1e6};

    for (uint64_t seed = 1; seed <= 300; seed++) {
        uint64_t rs = seed * UINT64_C(0x9e3779b97f4a7c15);
        double rate = rates[next_rand(&rs) % 6];
        int64_t burst = 1 + (int64_t)(next_rand(&rs) % 50);
        struct fx f = make(rate, burst);
        int64_t admitted = 0;
        double bound;

        for (int step = 0; step < 400; step++) {
            int64_t n = (int64_t)(next_rand(&rs) % (uint64_t)(burst + 2));

            ward_clock_fake_advance(f.clock, (int64_t)(next_rand(&rs) % (uint64_t)(50 * WARD_NS_PER_MS)));
            if (ward_limiter_allow_n(f.l, n) == OK)
                admitted += n;
            bound = (double)burst + rate * (double)(ward_clock_now(f.clock) - T0) / 1e9;
            cr_assert_leq((double)admitted, bound + 1e-6, "seed %llu step %d: %lld admitted, bound %f",
                          (unsigned long long)seed, step, (long long)admitted, bound);
        }
        done(&f);
    }
}

Test(limiter, a_greedy_caller_gets_all_of_burst_plus_rate_times_elapsed)
{
    static const double rates[] = {0, 0.5, 3, 10, 1000};

    for (uint64_t seed = 1; seed <= 100; seed++) {
        uint64_t rs = seed * UINT64_C(0xbf58476d1ce4e5b9);
        double rate = rates[next_rand(&rs) % 5];
        /* a bucket that never overflows between two steps, so no token is lost */
        int64_t burst = (int64_t)ceil(rate * 0.02) + 1 + (int64_t)(next_rand(&rs) % 20);
        struct fx f = make(rate, burst);
        int64_t admitted = 0;
        double ideal;

        for (int step = 0; step < 200; step++) {
            if (step > 0) /* the first drain empties the full bucket it starts with */
                ward_clock_fake_advance(f.clock, (int64_t)(next_rand(&rs) % (uint64_t)(20 * WARD_NS_PER_MS)));
            while (ward_limiter_allow(f.l) == OK)
                admitted++;
            ideal = (double)burst + rate * (double)(ward_clock_now(f.clock) - T0) / 1e9;
            cr_assert_leq((double)admitted, ideal + 1e-6);
            cr_assert_geq((double)admitted, floor(ideal) - 1, "seed %llu step %d: %lld of %f",
                          (unsigned long long)seed, step, (long long)admitted, ideal);
        }
        done(&f);
    }
}
