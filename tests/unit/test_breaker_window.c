/* test_breaker_window.c — the breaker's sliding-window mode (lib/breaker_window.c):
 * count- and time-based windows, minimum calls, failure-rate and slow-call-rate trips. */
#include <criterion/criterion.h>

#include <string.h>

#include <ward/breaker.h>

#define S WARD_NS_PER_S

static struct ward_clock *clk;

static void setup(void)
{
    clk = ward_clock_fake_new(0);
    cr_assert_not_null(clk);
}

static void teardown(void)
{
    ward_clock_free(clk);
}

TestSuite(breaker, .init = setup, .fini = teardown);

static struct ward_breaker *make(struct ward_breaker_settings *s)
{
    struct ward_breaker *br = NULL;

    s->clock = clk;
    cr_assert_eq(ward_breaker_new(s, &br), WARD_ERR_OK);
    return br;
}

static enum ward_breaker_outcome call_fn(void *arg)
{
    return *(const enum ward_breaker_outcome *)arg;
}

static enum ward_err succeed(struct ward_breaker *br)
{
    enum ward_breaker_outcome o = WARD_BREAKER_SUCCESS;
    return ward_breaker_execute(br, call_fn, &o);
}

static void fail_n(struct ward_breaker *br, int n)
{
    enum ward_breaker_outcome o = WARD_BREAKER_FAILURE;
    for (int i = 0; i < n; i++)
        cr_assert_eq(ward_breaker_execute(br, call_fn, &o), WARD_ERR_OK);
}

static void at(int64_t ns)
{
    ward_clock_fake_set(clk, ns);
}

static struct ward_breaker *make_window(enum ward_breaker_window_kind kind, uint32_t size,
                                        uint32_t min_calls)
{
    struct ward_breaker_settings s;

    ward_breaker_settings_default(&s);
    s.window.kind = kind;
    s.window.size = size;
    s.window.min_calls = min_calls;
    return make(&s);
}

static void expect_window(struct ward_breaker *br, uint64_t calls, uint64_t failures,
                          uint64_t slow)
{
    struct ward_breaker_stats st;

    ward_breaker_stats(br, &st);
    cr_assert_eq(st.window_calls, calls, "window calls %lu", (unsigned long)st.window_calls);
    cr_assert_eq(st.window_failures, failures);
    cr_assert_eq(st.window_slow, slow);
}

Test(breaker, count_window_trips_at_the_failure_rate_once_min_calls_are_in)
{
    struct ward_breaker *br = make_window(WARD_BREAKER_WINDOW_COUNT, 10, 6);

    fail_n(br, 5); /* 100 % but only 5 calls */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    ward_breaker_free(br);

    br = make_window(WARD_BREAKER_WINDOW_COUNT, 10, 6);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(succeed(br), WARD_ERR_OK);
    fail_n(br, 2); /* 2 of 6: 33 % */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    fail_n(br, 1); /* 3 of 7 */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    expect_window(br, 7, 3, 0);
    fail_n(br, 1); /* 4 of 8: 50 % */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    expect_window(br, 8, 4, 0); /* the window is kept while open ... */
    at(60 * S);
    cr_assert_eq(succeed(br), WARD_ERR_OK); /* ... half-open is gobreaker's */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    expect_window(br, 0, 0, 0); /* ... and closing starts an empty one */
    ward_breaker_free(br);
}

Test(breaker, count_window_forgets_the_oldest_call)
{
    struct ward_breaker *br = make_window(WARD_BREAKER_WINDOW_COUNT, 4, 4);
    struct ward_breaker_ticket t;

    fail_n(br, 1);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(succeed(br), WARD_ERR_OK);
    expect_window(br, 4, 0, 0);
    fail_n(br, 1);
    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_breaker_done(br, t, WARD_BREAKER_EXCLUDED); /* not recorded */
    expect_window(br, 4, 1, 0);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    fail_n(br, 1); /* S S F F */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, count_window_min_calls_is_capped_at_its_size)
{
    struct ward_breaker *br = make_window(WARD_BREAKER_WINDOW_COUNT, 5, 100);

    fail_n(br, 4);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED);
    fail_n(br, 1);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, time_window_counts_only_the_last_seconds)
{
    struct ward_breaker *br = make_window(WARD_BREAKER_WINDOW_TIME, 10, 4);

    fail_n(br, 3); /* second 0 */
    expect_window(br, 3, 3, 0);
    at(10 * S); /* the window is seconds 1..10: second 0 has left */
    expect_window(br, 0, 0, 0);
    cr_assert_eq(succeed(br), WARD_ERR_OK);
    at(10 * S + S / 2);
    fail_n(br, 2);
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_CLOSED); /* 3 calls */
    at(19 * S + S - 1);
    expect_window(br, 3, 2, 0);
    fail_n(br, 1); /* 3 of 4 */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN);
    ward_breaker_free(br);
}

Test(breaker, time_window_drops_each_second_as_it_leaves)
{
    struct ward_breaker *br = make_window(WARD_BREAKER_WINDOW_TIME, 3, 100);

    for (int sec = 0; sec < 3; sec++) {
        at(sec * S);
        fail_n(br, sec + 1);
    }
    expect_window(br, 6, 6, 0);
    at(3 * S);
    expect_window(br, 5, 5, 0);
    at(4 * S);
    expect_window(br, 3, 3, 0);
    at(100 * S);
    expect_window(br, 0, 0, 0);
    ward_breaker_free(br);
}

/* A call that takes ns on the fake clock. */
static void timed_call(struct ward_breaker *br, int64_t ns, enum ward_breaker_outcome outcome)
{
    struct ward_breaker_ticket t;

    cr_assert_eq(ward_breaker_allow(br, &t), WARD_ERR_OK);
    ward_clock_fake_advance(clk, ns);
    ward_breaker_done(br, t, outcome);
}

Test(breaker, slow_calls_trip_at_the_slow_call_rate)
{
    struct ward_breaker_settings s;
    struct ward_breaker *br;

    ward_breaker_settings_default(&s);
    s.window.kind = WARD_BREAKER_WINDOW_COUNT;
    s.window.size = 10;
    s.window.min_calls = 4;
    s.window.failure_rate = 100;
    s.window.slow_call_rate = 50;
    s.window.slow_call_ns = S;
    br = make(&s);
    timed_call(br, 2 * S, WARD_BREAKER_SUCCESS);
    timed_call(br, S, WARD_BREAKER_SUCCESS); /* exactly the threshold: not slow */
    timed_call(br, 0, WARD_BREAKER_FAILURE);
    expect_window(br, 3, 1, 1);
    timed_call(br, S + 1, WARD_BREAKER_FAILURE); /* slow failures count in both rates */
    cr_assert_eq(ward_breaker_state(br), WARD_BREAKER_OPEN, "2 of 4 slow");
    ward_breaker_free(br);
}

