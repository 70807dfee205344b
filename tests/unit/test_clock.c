/* test_clock.c — unit tests of the real and fake clocks. */
#include <criterion/criterion.h>

#include <pthread.h>
#include <time.h>

#include <ward/clock.h>

Test(clock, fake_starts_at_the_given_value)
{
    struct ward_clock *c = ward_clock_fake_new(INT64_C(1234567890123));

    cr_assert_not_null(c);
    cr_assert_eq(ward_clock_now(c), INT64_C(1234567890123));
    cr_assert_eq(ward_clock_now(c), INT64_C(1234567890123), "a fake clock does not move by itself");
    ward_clock_free(c);
}

Test(clock, fake_advance_adds_and_set_replaces)
{
    struct ward_clock *c = ward_clock_fake_new(1000);

    ward_clock_fake_advance(c, 500);
    cr_assert_eq(ward_clock_now(c), 1500);
    ward_clock_fake_advance(c, 3 * WARD_NS_PER_S);
    cr_assert_eq(ward_clock_now(c), 1500 + 3 * WARD_NS_PER_S);
    ward_clock_fake_set(c, 42);
    cr_assert_eq(ward_clock_now(c), 42);
    ward_clock_fake_set(c, -7);
    cr_assert_eq(ward_clock_now(c), -7);
    ward_clock_free(c);
}

Test(clock, fake_advance_ignores_zero_and_negative)
{
    struct ward_clock *c = ward_clock_fake_new(100);

    ward_clock_fake_advance(c, 0);
    ward_clock_fake_advance(c, -50);
    cr_assert_eq(ward_clock_now(c), 100);
    ward_clock_free(c);
}

Test(clock, fake_advance_saturates_instead_of_wrapping)
{
    struct ward_clock *c = ward_clock_fake_new(INT64_MAX - 5);

    ward_clock_fake_advance(c, 10);
    cr_assert_eq(ward_clock_now(c), INT64_MAX);
    ward_clock_sleep(c, INT64_MAX);
    cr_assert_eq(ward_clock_now(c), INT64_MAX);
    ward_clock_free(c);
}

Test(clock, sleep_on_fake_advances_at_once)
{
    struct ward_clock *c = ward_clock_fake_new(0);
    int64_t before = ward_clock_now(NULL);

    ward_clock_sleep(c, 3600 * WARD_NS_PER_S);
    cr_assert_eq(ward_clock_now(c), 3600 * WARD_NS_PER_S);
    cr_assert_lt(ward_clock_now(NULL) - before, 10 * WARD_NS_PER_S, "must not block an hour");
    ward_clock_sleep(c, 0);
    ward_clock_sleep(c, -5);
    cr_assert_eq(ward_clock_now(c), 3600 * WARD_NS_PER_S);
    ward_clock_free(c);
}

Test(clock, real_clock_is_monotonic_non_decreasing)
{
    const struct ward_clock *r = ward_clock_real();
    int64_t prev = ward_clock_now(r);

    cr_assert_not_null(r);
    cr_assert_eq(ward_clock_real(), r, "one static instance");
    cr_assert_gt(prev, 0);
    for (int i = 0; i < 100000; i++) {
        int64_t now = ward_clock_now(i % 2 ? r : NULL);

        cr_assert_geq(now, prev);
        prev = now;
    }
}

Test(clock, real_clock_matches_clock_monotonic)
{
    struct timespec ts;
    int64_t before;
    int64_t mine;
    int64_t after;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    before = (int64_t)ts.tv_sec * WARD_NS_PER_S + ts.tv_nsec;
    mine = ward_clock_now(ward_clock_real());
    clock_gettime(CLOCK_MONOTONIC, &ts);
    after = (int64_t)ts.tv_sec * WARD_NS_PER_S + ts.tv_nsec;
    cr_assert(before <= mine && mine <= after);
}

Test(clock, fake_moves_are_ignored_on_the_real_clock)
{
    const struct ward_clock *r = ward_clock_real();
    int64_t before = ward_clock_now(r);

    ward_clock_fake_set(r, 0);
    ward_clock_fake_advance(r, 1000 * WARD_NS_PER_S);
    ward_clock_fake_set(NULL, 0);
    ward_clock_fake_advance(NULL, 1000 * WARD_NS_PER_S);
    cr_assert_geq(ward_clock_now(r), before);
    cr_assert_lt(ward_clock_now(r) - before, 100 * WARD_NS_PER_S);
}

Test(clock, real_sleep_waits_at_least_the_duration)
{
    int64_t before = ward_clock_now(NULL);

    ward_clock_sleep(ward_clock_real(), WARD_NS_PER_MS);
    cr_assert_geq(ward_clock_now(NULL) - before, WARD_NS_PER_MS);
    before = ward_clock_now(NULL);
    ward_clock_sleep(NULL, -WARD_NS_PER_S);
    ward_clock_sleep(NULL, 0);
    cr_assert_lt(ward_clock_now(NULL) - before, WARD_NS_PER_S);
}

Test(clock, free_of_null_and_real_is_a_no_op)
{
    ward_clock_free(NULL);
    ward_clock_free(ward_clock_real());
    cr_assert_gt(ward_clock_now(ward_clock_real()), 0);
}

Test(clock, wall_is_unix_time_in_nanoseconds)
{
    time_t before = time(NULL);
    int64_t wall = ward_clock_wall();
    time_t after = time(NULL);

    cr_assert_geq(wall / WARD_NS_PER_S, (int64_t)before - 1);
    cr_assert_leq(wall / WARD_NS_PER_S, (int64_t)after + 1);
}

enum { ADVANCERS = 8, ADVANCES = 100000 };

static void *advance_many(void *arg)
{
    const struct ward_clock *c = arg;

    for (int i = 0; i < ADVANCES; i++) {
        if (i % 2)
            ward_clock_fake_advance(c, 3);
        else
            ward_clock_sleep(c, 3);
    }
    return NULL;
}

Test(clock, concurrent_advances_sum_exactly)
{
    struct ward_clock *c = ward_clock_fake_new(7);
    pthread_t th[ADVANCERS];

    for (int i = 0; i < ADVANCERS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, advance_many, c), 0);
    for (int i = 0; i < ADVANCERS; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(ward_clock_now(c), 7 + (int64_t)ADVANCERS * ADVANCES * 3);
    ward_clock_free(c);
}
